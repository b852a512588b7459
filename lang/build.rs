//! Build step: lalrpop turns `src/grammar.lalrpop` into the parser module.
fn main() {
    lalrpop::Configuration::new()
        .use_cargo_dir_conventions()
        .process()
        .expect("grammar.lalrpop must generate");
}
