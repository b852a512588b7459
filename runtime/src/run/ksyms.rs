//! Kernel symbols from /proc/kallsyms: address → `function+0xoff`, for `ksym()` keys and
//! kernel stacks. Loaded once, on first need.

use std::fs;

pub struct Ksyms {
    /// (address, name), sorted by address.
    syms: Vec<(u64, String)>,
}

impl Ksyms {
    pub fn load() -> Ksyms {
        let text = fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        let mut syms: Vec<(u64, String)> = text
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let addr = u64::from_str_radix(it.next()?, 16).ok()?;
                let kind = it.next()?;
                let name = it.next()?;
                // Text symbols only; data symbols would misname call sites.
                (addr != 0 && matches!(kind, "t" | "T" | "w" | "W"))
                    .then(|| (addr, name.to_string()))
            })
            .collect();
        syms.sort_unstable();
        Ksyms { syms }
    }

    /// Symbols from a recording (sorted, one per address).
    pub fn from_symbols(syms: Vec<(u64, String)>) -> Ksyms {
        Ksyms { syms }
    }

    /// The function `addr` is in, as `resolve` sees it: (its address, its name).
    pub fn containing(&self, addr: u64) -> Option<(u64, &str)> {
        let i = self.syms.partition_point(|(a, _)| *a <= addr);
        let (base, name) = &self.syms[i.checked_sub(1)?];
        (addr - base < 1 << 20).then_some((*base, name.as_str()))
    }

    /// `name+0xoff`, or the address in hex when it is in no known function (or when
    /// kallsyms hides addresses, as it does without root).
    pub fn resolve(&self, addr: u64) -> String {
        match self.containing(addr) {
            Some((base, name)) if addr == base => name.to_string(),
            Some((base, name)) => format!("{name}+{:#x}", addr - base),
            None => format!("{addr:#x}"),
        }
    }

    /// The function name alone, as `ksym()` keys show it (bpftrace prints no offset).
    pub fn function(&self, addr: u64) -> String {
        let full = self.resolve(addr);
        match full.split_once('+') {
            Some((name, _)) => name.to_string(),
            None => full,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_within_functions() {
        let k = Ksyms {
            syms: vec![(0x1000, "a".into()), (0x2000, "b".into())],
        };
        assert_eq!(k.resolve(0x1000), "a");
        assert_eq!(k.resolve(0x1010), "a+0x10");
        assert_eq!(k.function(0x2004), "b");
        assert_eq!(k.resolve(0x10), "0x10");
    }
}
