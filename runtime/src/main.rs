mod output;
fn main(){}
