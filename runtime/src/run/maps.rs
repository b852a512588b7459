//! Reading script maps back: raw per-CPU bytes → merged `MapDump` rows with typed keys
//! (enum and flag names, symbols, stacks), plus `clear`, `zero` and the loss counters.
//! Nothing here prints: the printers in `output` take the dumps.
//! Layouts come from the compiler, so reading can never disagree with writing.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::io;

use mmql_compiler::lower::layout::{counter, MapKind, MapLayout, STACK_DEPTH};
use mmql_compiler::lower::roles::ObjectMap;
use mmql_compiler::lower::Compiled;
use mmql_compiler::program::MapId;
use mmql_compiler::types::Type;

use super::ksyms::Ksyms;
use super::load::Loaded;
use super::merge::Acc;
use super::store::Store;
use crate::output::value::{MapDump, Scalar};

pub struct Maps<'a> {
    pub compiled: &'a Compiled,
    pub store: Store<'a>,
    ksyms: OnceCell<Ksyms>,
}

pub(super) fn word(b: &[u8], i: usize) -> u64 {
    b.get(i * 8..i * 8 + 8)
        .map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
}

fn text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

impl<'a> Maps<'a> {
    pub fn new(compiled: &'a Compiled, loaded: &'a Loaded) -> Maps<'a> {
        Maps::over(compiled, Store::Kernel(loaded))
    }

    pub fn over(compiled: &'a Compiled, store: Store<'a>) -> Maps<'a> {
        Maps {
            compiled,
            store,
            ksyms: OnceCell::new(),
        }
    }

    /// Symbols come from `ksyms` (a recording's) instead of this machine's kallsyms.
    pub fn with_ksyms(self, ksyms: Ksyms) -> Maps<'a> {
        let _ = self.ksyms.set(ksyms);
        self
    }

    /// Stops the probes; the maps stay readable.
    pub fn detach(&self) {
        self.store.detach();
    }

    fn ksyms(&self) -> &Ksyms {
        self.ksyms.get_or_init(Ksyms::load)
    }

    /// A value of type `t` held in `bytes` (a key slot or a last-value map value).
    pub fn scalar(&self, t: &Type, bytes: &[u8]) -> Scalar {
        let v = word(bytes, 0);
        let p = &self.compiled.program;
        match t {
            Type::Int { signed: true, .. } => Scalar::Int(v as i64),
            Type::Int { signed: false, .. } | Type::Void => Scalar::UInt(v),
            Type::Bool => Scalar::Bool(v != 0),
            Type::Str { .. } => Scalar::Str(text(bytes)),
            Type::Enum(id) | Type::Flags(id) => Scalar::Sym(
                p.symtabs
                    .get(*id)
                    .map_or_else(|| v.to_string(), |s| s.render(v as i64)),
            ),
            Type::Sym => Scalar::Sym(self.ksyms().function(v)),
            Type::Stack => Scalar::Str(self.stack(v as i64)),
        }
    }

    fn stack(&self, id: i64) -> String {
        let Some(stacks) = self.compiled.roles.stacks else {
            return String::new();
        };
        let found = (id >= 0)
            .then(|| {
                self.store
                    .lookup(stacks, &(id as u32).to_le_bytes())
                    .ok()
                    .flatten()
            })
            .flatten();
        let Some((buf, _)) = found else {
            return "[stack unavailable]".to_string();
        };
        let mut s = String::from("\n");
        for i in 0..STACK_DEPTH as usize {
            let ip = word(&buf, i);
            if ip == 0 {
                break;
            }
            s.push_str(&format!("        {}\n", self.ksyms().resolve(ip)));
        }
        s
    }

    pub fn dump(&self, id: MapId) -> io::Result<MapDump> {
        self.read(id, false).map(|(d, _)| d)
    }

    /// The dump, and for histograms the sum of every value counted in each row (aligned with
    /// `rows`; zeros for other kinds), which exporters publish as a histogram's `_sum`.
    ///
    /// Elements become rows as they are read: only histograms, whose buckets are separate
    /// elements, are grouped by key first. That keeps a million-key dump near the size of its
    /// rows.
    pub fn dump_with_sums(&self, id: MapId) -> io::Result<(MapDump, Vec<i128>)> {
        self.read(id, true)
    }

    /// The dump, with the histogram sums only when `want_sums` (they are 16 bytes a row).
    fn read(&self, id: MapId, want_sums: bool) -> io::Result<(MapDump, Vec<i128>)> {
        let info = &self.compiled.program.maps[id];
        let layout = &self.compiled.layouts[id];
        let buckets = layout.buckets as usize;
        let timed = info.value.agg().is_some_and(|a| a.row().timed);
        // A hash element exists only once written, so a sum that came to 0 is a real row
        // (bpftrace prints it too); an array slot is written when its marker word says so.
        let hash = !matches!(layout.kind, MapKind::PerCpuArray { .. });
        let marker = layout.written_word(&info.value).map(|w| w as usize);
        let mut dump = MapDump {
            name: info.name.clone(),
            key_names: info.key_names.clone(),
            rows: vec![],
        };
        let mut sums = Vec::new();
        let mut push = |key: &[u8], acc: Acc<'_>| {
            let sum = acc.hist_sum;
            let written = hash || acc.marked;
            let Some(value) = acc.finish(self, written) else {
                return;
            };
            let keys = info
                .keys
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let off = layout.key_offsets.get(i).copied().unwrap_or(0) as usize;
                    self.scalar(t, key.get(off..).unwrap_or(&[]))
                })
                .collect();
            dump.rows.push((keys, value));
            if want_sums {
                sums.push(sum);
            }
        };
        // key parts (as bytes) → merged buckets, for histograms only
        let mut grouped: BTreeMap<Vec<u8>, Acc> = BTreeMap::new();
        self.store
            .each(ObjectMap::script(id), &mut |key, value, slot| {
                let (key_bytes, bucket, slice) = match layout.kind {
                    MapKind::PerCpuArray { .. } => {
                        let i = u32::from_le_bytes(key[..4].try_into().unwrap_or([0; 4])) as usize;
                        let (k, b) = if buckets > 0 {
                            (i / buckets, i % buckets)
                        } else {
                            (i, 0)
                        };
                        let kb = if info.keys.is_empty() {
                            vec![]
                        } else {
                            (k as u64).to_le_bytes().to_vec()
                        };
                        (kb, b, 0)
                    }
                    // [keys, slice, bucket]
                    _ if timed && key.len() >= 16 => {
                        let split = key.len() - 16;
                        let (slice, bucket) = (word(&key[split..], 0), word(&key[split..], 1));
                        (key[..split].to_vec(), bucket as usize, slice)
                    }
                    _ if buckets > 0 => {
                        let split = key.len() - 8;
                        (key[..split].to_vec(), word(&key[split..], 0) as usize, 0)
                    }
                    _ => (key.to_vec(), 0, 0),
                };
                if buckets > 0 {
                    let acc = grouped
                        .entry(key_bytes)
                        .or_insert_with(|| Acc::new(&info.value, buckets, marker));
                    for cpu in value.chunks_exact(slot) {
                        acc.merge(cpu, bucket, slice);
                    }
                } else {
                    let mut acc = Acc::new(&info.value, 0, marker);
                    for cpu in value.chunks_exact(slot) {
                        acc.merge(cpu, 0, 0);
                    }
                    push(&key_bytes, acc);
                }
            })?;
        for (key, acc) in grouped {
            push(&key, acc);
        }
        Ok((dump, sums))
    }

    /// What the exit dump prints: every script map by name, each read only when the
    /// iterator reaches it, so a printer that drops each after printing holds one at a time.
    pub fn exit_dumps(&self) -> impl Iterator<Item = io::Result<MapDump>> + '_ {
        let maps = &self.compiled.program.maps;
        let mut ids: Vec<MapId> = (0..maps.len()).filter(|&i| !maps[i].internal).collect();
        ids.sort_by(|&a, &b| maps[a].name.cmp(&maps[b].name));
        ids.into_iter().map(|id| self.dump(id))
    }

    /// `clear(@m)`: removes every element (arrays: zeroes them).
    pub fn clear(&self, id: MapId) -> io::Result<()> {
        let layout = &self.compiled.layouts[id];
        self.store
            .clear(ObjectMap::script(id), array_entries(layout))
    }

    /// `zero(@m)`: keeps the keys, zeroes the values.
    pub fn zero(&self, id: MapId) -> io::Result<()> {
        let layout = &self.compiled.layouts[id];
        self.store
            .zero(ObjectMap::script(id), array_entries(layout))
    }

    /// The single value of a map without keys, for userspace printf.
    pub fn value(&self, id: MapId) -> io::Result<Scalar> {
        let d = self.dump(id)?;
        Ok(d.rows.first().map_or(Scalar::Int(0), |(_, v)| v.single()))
    }

    /// One counter slot (summed over CPUs in a recording made when the map was per-CPU); 0
    /// when the script has no counters map or the map stops below `slot`: no probe counts there.
    pub fn counter(&self, slot: u32) -> io::Result<u64> {
        let Some(counters) = self.compiled.roles.counters else {
            return Ok(0);
        };
        if slot >= self.compiled.map_def(counters).max_entries {
            return Ok(0);
        }
        let found = self.store.lookup(counters, &slot.to_le_bytes())?;
        Ok(found.map_or(0, |(v, size)| v.chunks(size).map(|c| word(c, 0)).sum()))
    }

    /// The loss counters, summed over CPUs.
    pub fn counters(&self) -> io::Result<Vec<u64>> {
        (0..counter::COUNT).map(|i| self.counter(i)).collect()
    }
}

fn array_entries(layout: &MapLayout) -> Option<u32> {
    match layout.kind {
        MapKind::PerCpuArray { entries } => Some(entries),
        _ => None,
    }
}
