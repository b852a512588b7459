//! Recordings of a run (`--record FILE`): the raw bytes a script's maps held when tracing
//! stopped, and every ring-buffer record in the order it arrived, as JSON lines. `mmql replay`
//! reads one back and prints, through the same merging and printers, what the run printed
//! (minus `every`/`after` output, whose moments are not recorded). Golden tests use them as
//! recorded input; users use them to look at a production run somewhere else.
//!
//! ```text
//! {"boot_id":"6f1c…","cpus":2,"max_keys":null,"mmql_recording":1}
//! {"key_size":8,"map":"m0_k","per_cpu":true,"value_size":8}
//! {"ring":"ffffffff00000000"}
//! {"entry":"m0_k","key":"0100000000000000","value":"05000000000000000300000000000000"}
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use mmql_compiler::bpf::{MapDef, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PERCPU_HASH};
use mmql_compiler::lower::roles::ObjectMap;
use mmql_compiler::lower::Compiled;
use serde_json::{json, Value};

use super::store::Store;

const VERSION: u64 = 1;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn per_cpu(def: &MapDef) -> bool {
    matches!(
        def.map_type,
        BPF_MAP_TYPE_PERCPU_ARRAY | BPF_MAP_TYPE_PERCPU_HASH
    )
}

/// The maps worth recording: all but the ring buffer, whose records are recorded one by one.
fn recorded(compiled: &Compiled) -> impl Iterator<Item = (ObjectMap, &MapDef)> {
    compiled
        .bpf_maps
        .iter()
        .enumerate()
        .map(|(i, d)| (ObjectMap(i), d))
        .filter(move |&(m, _)| Some(m) != compiled.roles.events)
}

struct RecMap {
    per_cpu: bool,
    key_size: usize,
    value_size: usize,
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

pub struct Recording {
    pub cpus: usize,
    pub max_keys: Option<u32>,
    /// The boot the run was recorded in: kernel addresses (ksym, kstack) mean something only
    /// within it.
    pub boot_id: Option<String>,
    pub ring: Vec<Vec<u8>>,
    /// The maps as the file declares them, by name, until `bind` files them by object map.
    declared: BTreeMap<String, RecMap>,
    /// By `ObjectMap` of the script the recording is bound to.
    maps: RefCell<Vec<Option<RecMap>>>,
}

impl Recording {
    pub fn read(path: &Path) -> Result<Recording, String> {
        let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut rec = Recording {
            cpus: 0,
            max_keys: None,
            boot_id: None,
            ring: Vec::new(),
            declared: BTreeMap::new(),
            maps: RefCell::new(Vec::new()),
        };
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let at = |what: &str| format!("{}:{}: {what}", path.display(), i + 1);
            let line = line.map_err(|e| at(&e.to_string()))?;
            let v: Value = serde_json::from_str(&line).map_err(|e| {
                // serde counts lines within the one it was given; only the column helps.
                let msg = e.to_string();
                let msg = msg.split(" at line ").next().unwrap_or_default();
                at(&format!("not a JSON line (column {}: {msg})", e.column()))
            })?;
            let text = |k: &str| v.get(k).and_then(Value::as_str);
            let num = |k: &str| v.get(k).and_then(Value::as_u64);
            if i == 0 {
                if num("mmql_recording") != Some(VERSION) {
                    return Err(at("not an mmql recording (version 1)"));
                }
                rec.cpus = num("cpus")
                    .filter(|&n| n > 0)
                    .ok_or_else(|| at("no `cpus`"))? as usize;
                rec.max_keys = num("max_keys").map(|n| n as u32);
                rec.boot_id = text("boot_id").map(str::to_string);
            } else if let Some(name) = text("map") {
                let m = RecMap {
                    per_cpu: v.get("per_cpu").and_then(Value::as_bool).unwrap_or(false),
                    key_size: num("key_size").ok_or_else(|| at("no `key_size`"))? as usize,
                    value_size: num("value_size").ok_or_else(|| at("no `value_size`"))? as usize,
                    entries: BTreeMap::new(),
                };
                rec.declared.insert(name.to_string(), m);
            } else if let Some(r) = text("ring") {
                rec.ring
                    .push(unhex(r).ok_or_else(|| at("`ring` is not hex"))?);
            } else if let Some(name) = text("entry") {
                let key = text("key").and_then(unhex).ok_or_else(|| at("bad `key`"))?;
                let value = text("value")
                    .and_then(unhex)
                    .ok_or_else(|| at("bad `value`"))?;
                let cpus = rec.cpus;
                let m = rec
                    .declared
                    .get_mut(name)
                    .ok_or_else(|| at(&format!("entry of undeclared map `{name}`")))?;
                let slots = if m.per_cpu { cpus } else { 1 };
                if key.len() != m.key_size || value.len() != slot(m) * slots {
                    return Err(at(&format!("entry of `{name}` has the wrong size")));
                }
                m.entries.insert(key, value);
            } else {
                return Err(at("unknown line"));
            }
        }
        if rec.cpus == 0 {
            return Err(format!("{}: empty recording", path.display()));
        }
        Ok(rec)
    }

    /// Files the recorded maps under the script's object maps. Every map the object
    /// declares must be in the recording with the same sizes: otherwise the recording is of
    /// another script (or another mmql).
    pub fn bind(&mut self, compiled: &Compiled) -> Result<(), String> {
        let mut maps: Vec<Option<RecMap>> = compiled.bpf_maps.iter().map(|_| None).collect();
        for (m, def) in recorded(compiled) {
            // The counters map was per-CPU before it was shared; its slots mean the same, and
            // a lookup sums whatever CPU slots a value has.
            let counters = Some(m) == compiled.roles.counters;
            let found = self.declared.remove(&def.name).filter(|r| {
                (r.per_cpu == per_cpu(def) || counters)
                    && r.key_size == def.key_size as usize
                    && r.value_size == def.value_size as usize
            });
            let Some(r) = found else {
                return Err(format!(
                    "the recording does not match this script (map `{}` differs or is missing); replay it with the script that recorded it",
                    def.name
                ));
            };
            maps[m.0] = Some(r);
        }
        *self.maps.get_mut() = maps;
        Ok(())
    }

    pub fn each(&self, map: ObjectMap, f: &mut dyn FnMut(&[u8], &[u8], usize)) -> io::Result<()> {
        let maps = self.maps.borrow();
        let m = maps
            .get(map.0)
            .and_then(Option::as_ref)
            .ok_or_else(|| io::Error::other(format!("map {} not in the recording", map.0)))?;
        for (k, v) in &m.entries {
            f(k, v, slot(m));
        }
        Ok(())
    }

    pub fn lookup(&self, map: ObjectMap, key: &[u8]) -> Option<(Vec<u8>, usize)> {
        let maps = self.maps.borrow();
        let m = maps.get(map.0)?.as_ref()?;
        m.entries.get(key).map(|v| (v.clone(), slot(m)))
    }

    pub fn clear(&self, map: ObjectMap, array: bool) {
        if array {
            self.zero(map);
        } else if let Some(Some(m)) = self.maps.borrow_mut().get_mut(map.0) {
            m.entries.clear();
        }
    }

    pub fn zero(&self, map: ObjectMap) {
        if let Some(Some(m)) = self.maps.borrow_mut().get_mut(map.0) {
            m.entries.values_mut().for_each(|v| v.fill(0));
        }
    }
}

/// Bytes of one CPU's value: per-CPU slots are padded to 8, as the kernel does.
fn slot(m: &RecMap) -> usize {
    if m.per_cpu {
        m.value_size.div_ceil(8) * 8
    } else {
        m.value_size
    }
    .max(1)
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`).
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// Does printing this program resolve kernel addresses (ksym values, kernel stacks)?
pub fn uses_kernel_symbols(compiled: &Compiled) -> bool {
    use mmql_compiler::program::ValueKind;
    use mmql_compiler::types::Type;
    let sym = |t: &Type| matches!(t, Type::Sym | Type::Stack);
    let p = &compiled.program;
    p.maps
        .iter()
        .any(|m| m.keys.iter().any(sym) || matches!(&m.value, ValueKind::Last(t) if sym(t)))
        || p.printfs.iter().any(|f| f.args.iter().any(sym))
}

/// Writes a recording while a script runs.
pub struct Recorder {
    out: BufWriter<File>,
}

impl Recorder {
    /// Creates `path` and writes the header and the map declarations.
    pub fn create(path: &Path, compiled: &Compiled, max_keys: Option<u32>) -> io::Result<Recorder> {
        let cpus = crate::sys::possible_cpus()?;
        let mut out = BufWriter::new(File::create(path)?);
        writeln!(
            out,
            "{}",
            json!({"mmql_recording": VERSION, "cpus": cpus, "max_keys": max_keys, "boot_id": boot_id()})
        )?;
        for (_, def) in recorded(compiled) {
            writeln!(
                out,
                "{}",
                json!({"map": def.name, "per_cpu": per_cpu(def), "key_size": def.key_size, "value_size": def.value_size})
            )?;
        }
        Ok(Recorder { out })
    }

    /// One ring-buffer record, as it arrived.
    pub fn ring(&mut self, record: &[u8]) -> io::Result<()> {
        writeln!(self.out, "{}", json!({"ring": hex(record)}))
    }

    /// Every element of every recorded map, read now (tracing has stopped), then flushed.
    pub fn finish(mut self, store: &Store<'_>, compiled: &Compiled) -> io::Result<()> {
        for (m, def) in recorded(compiled) {
            let mut err = Ok(());
            store.each(m, &mut |k, v, _| {
                if err.is_ok() {
                    err = writeln!(
                        self.out,
                        "{}",
                        json!({"entry": def.name, "key": hex(k), "value": hex(v)})
                    );
                }
            })?;
            err?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 1, 0xab, 0xff]), "0001abff");
        assert_eq!(unhex("0001abff"), Some(vec![0, 1, 0xab, 0xff]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
