//! Zone state for printf-time functions: /proc/zoneinfo, /proc/buddyinfo and debugfs
//! `extfrag/extfrag_index` text in, per-zone facts out (node, name, first pfn, the numbers of
//! its zoneinfo block, free blocks per order, fragmentation index per order).
//!
//! Why read them at print time: compaction tracepoints name a zone only by its first pfn
//! (`zone_start`) and carry no watermarks, free counts or fragmentation index; the files
//! below hold all of that for the zone with that `start_pfn`.

use std::collections::HashMap;

/// One zone of one node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Zone {
    pub node: i64,
    /// As /proc/zoneinfo spells it: `DMA`, `DMA32`, `Normal`, `Movable`, `Device`.
    pub name: String,
    pub start_pfn: Option<u64>,
    /// `min`, `low`, `high`, `free` (the `pages free` line), `nr_free_pages`, …
    pub values: HashMap<String, i64>,
    /// Free blocks per order, from /proc/buddyinfo.
    pub free_blocks: Vec<u64>,
    /// The kernel's fragmentation index per order, as debugfs prints it (`-1.000`, `0.728`).
    pub fragindex: Vec<String>,
}

impl Zone {
    /// `ZONE_NORMAL`: the name of the kernel's `enum zone_type` member.
    pub fn enum_name(&self) -> String {
        format!("ZONE_{}", self.name.to_ascii_uppercase())
    }

    /// The fragmentation index for `order` as the kernel prints it: debugfs when it was
    /// readable, else computed from buddyinfo with the kernel's formula
    /// (`__fragmentation_index` in mm/vmstat.c). `-` for orders outside the zone's range,
    /// such as the -1 of a full compaction.
    pub fn fragindex(&self, order: i64) -> String {
        let Ok(o) = usize::try_from(order) else {
            return "-".into();
        };
        if let Some(s) = self.fragindex.get(o) {
            return s.clone();
        }
        if o >= self.free_blocks.len() {
            return "-".into();
        }
        let (mut total, mut pages, mut suitable) = (0u64, 0u64, 0u64);
        for (k, &n) in self.free_blocks.iter().enumerate() {
            total += n;
            pages += n << k;
            if k >= o {
                suitable += n << (k - o);
            }
        }
        if total == 0 {
            return "0.000".into();
        }
        if suitable > 0 {
            return "-1.000".into();
        }
        let requested = 1u64 << o;
        let idx = 1000i64 - ((1000 + pages * 1000 / requested) / total) as i64;
        format!("{}.{:03}", idx / 1000, idx % 1000)
    }
}

/// Every zone of the machine, looked up by first pfn.
#[derive(Debug, Default)]
pub struct Zones {
    pub zones: Vec<Zone>,
}

impl Zones {
    /// Reads the live files; a file that cannot be read leaves its facts empty (debugfs is
    /// often unmounted, and the caller prints `?` for what is missing).
    pub fn read() -> Zones {
        let text = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        Zones::parse(
            &text("/proc/zoneinfo"),
            &text("/proc/buddyinfo"),
            &text("/sys/kernel/debug/extfrag/extfrag_index"),
        )
    }

    pub fn parse(zoneinfo: &str, buddyinfo: &str, extfrag: &str) -> Zones {
        let mut zones: Vec<Zone> = Vec::new();
        for line in zoneinfo.lines() {
            if let Some((node, name)) = zone_header(line) {
                zones.push(Zone {
                    node,
                    name,
                    ..Zone::default()
                });
                continue;
            }
            let Some(z) = zones.last_mut() else { continue };
            let t = line.trim();
            if let Some(v) = t.strip_prefix("start_pfn:") {
                z.start_pfn = v.trim().parse().ok();
            } else if let Some(v) = t.strip_prefix("pages free") {
                if let Ok(n) = v.trim().parse() {
                    z.values.insert("free".into(), n);
                }
            } else if let Some((k, v)) = t.split_once(char::is_whitespace) {
                // `min 35`, `nr_free_pages 3840`; skips `protection: (…)` and `cpu: 0`.
                if let Ok(n) = v.trim().parse() {
                    z.values.entry(k.to_string()).or_insert(n);
                }
            }
        }
        for (node, name, rest) in per_zone_rows(buddyinfo) {
            if let Some(z) = zones.iter_mut().find(|z| z.node == node && z.name == name) {
                z.free_blocks = rest.iter().filter_map(|w| w.parse().ok()).collect();
            }
        }
        for (node, name, rest) in per_zone_rows(extfrag) {
            if let Some(z) = zones.iter_mut().find(|z| z.node == node && z.name == name) {
                z.fragindex = rest.iter().map(|w| w.to_string()).collect();
            }
        }
        Zones { zones }
    }

    /// The populated zone whose first pfn is `pfn`. Empty zones print no `start_pfn`, so
    /// they never match.
    pub fn by_start(&self, pfn: u64) -> Option<&Zone> {
        self.zones.iter().find(|z| z.start_pfn == Some(pfn))
    }
}

/// `Node 0, zone   Normal` → (0, "Normal").
fn zone_header(line: &str) -> Option<(i64, String)> {
    let rest = line.strip_prefix("Node ")?;
    let (node, rest) = rest.split_once(',')?;
    let name = rest.trim().strip_prefix("zone")?.trim();
    Some((node.trim().parse().ok()?, name.to_string()))
}

/// Lines `Node 0, zone   Normal  w1 w2 …` as (node, zone, words after the zone name).
fn per_zone_rows(text: &str) -> Vec<(i64, String, Vec<&str>)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("Node ")?;
            let (node, rest) = rest.split_once(',')?;
            let mut words = rest.split_whitespace();
            if words.next()? != "zone" {
                return None;
            }
            let name = words.next()?.to_string();
            Some((node.trim().parse().ok()?, name, words.collect()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONEINFO: &str = "Node 0, zone      DMA
  per-node stats
      nr_inactive_anon 135522
  pages free     3840
        boost    0
        min      35
        low      43
        high     51
        protection: (0, 2713, 23811, 23811, 23811)
      nr_free_pages 3840
  pagesets
    cpu: 0
              count: 0
  start_pfn:           1
Node 0, zone   Normal
  pages free     93896
        min      9706
        low      12132
        high     14558
      nr_free_pages 93896
  start_pfn:           1048576
Node 0, zone  Movable
  pages free     0
        min      32
";
    const BUDDY: &str = "Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      1      3
Node 0, zone   Normal   5793   2078   1386    736    358     60     16      8      5     12     54
";

    #[test]
    fn parses_zoneinfo_blocks() {
        let z = Zones::parse(ZONEINFO, BUDDY, "");
        assert_eq!(z.zones.len(), 3);
        let normal = z.by_start(1_048_576).expect("normal zone");
        assert_eq!(
            (normal.node, normal.enum_name().as_str()),
            (0, "ZONE_NORMAL")
        );
        assert_eq!(normal.values.get("min"), Some(&9706));
        assert_eq!(normal.values.get("free"), Some(&93896));
        assert_eq!(normal.values.get("nr_free_pages"), Some(&93896));
        let dma = z.by_start(1).expect("dma zone");
        assert_eq!(dma.values.get("high"), Some(&51));
        // The per-node counter above `pages free` belongs to the node, but is harmless.
        assert_eq!(dma.values.get("protection:"), None);
        // The empty Movable zone has no start_pfn and is never found by pfn.
        assert!(z.zones[2].start_pfn.is_none());
        assert!(z.by_start(0).is_none());
    }

    #[test]
    fn fragindex_from_buddyinfo_follows_the_kernel_formula() {
        let z = Zones::parse(ZONEINFO, BUDDY, "");
        let dma = z.by_start(1).expect("dma zone");
        // Order 9 and 10 blocks are free: an order-9 request would succeed.
        assert_eq!(dma.fragindex(9), "-1.000");
        assert_eq!(dma.fragindex(-1), "-");
        // A zone with only order-0 blocks: 4 free pages asked for order 2 (4 pages).
        let only_small = Zone {
            free_blocks: vec![4, 0, 0],
            ..Zone::default()
        };
        // 1000 - (1000 + 4*1000/4) / 4 = 1000 - 500 = 500.
        assert_eq!(only_small.fragindex(2), "0.500");
        let empty = Zone {
            free_blocks: vec![0, 0],
            ..Zone::default()
        };
        assert_eq!(empty.fragindex(1), "0.000");
    }

    #[test]
    fn debugfs_index_wins() {
        let extfrag = "Node 0, zone   Normal -1.000 -1.000 0.728\n";
        let z = Zones::parse(ZONEINFO, BUDDY, extfrag);
        let normal = z.by_start(1_048_576).expect("normal zone");
        assert_eq!(normal.fragindex(2), "0.728");
    }
}
