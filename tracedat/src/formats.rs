//! The texts stored in the file's headers: event format files (name and ID), the ring buffer's
//! `header_page` layout, and the saved command lines.

use std::collections::HashMap;

/// One event's format file, as tracefs prints it, with the system it was stored under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFormat {
    /// `ftrace` for the format files of ftrace's own events, else the events directory.
    pub system: String,
    /// From the text's `name:` line.
    pub name: String,
    /// From the text's `ID:` line: the `common_type` of this event's records.
    pub id: u16,
    /// The format file's text, unchanged.
    pub text: String,
}

impl EventFormat {
    /// Reads `name:` and `ID:` from a format text; the reason in words when either is missing.
    pub fn parse(system: &str, text: String) -> Result<EventFormat, String> {
        let mut name = None;
        let mut id = None;
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("name:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("ID:") {
                let v = v.trim();
                id = Some(v.parse::<u16>().map_err(|_| {
                    format!("format of `{system}` has ID `{v}`, not a number up to 65535")
                })?);
            }
            if name.is_some() && id.is_some() {
                break;
            }
        }
        match (name, id) {
            (Some(name), Some(id)) => Ok(EventFormat {
                system: system.to_string(),
                name,
                id,
                text,
            }),
            (None, _) => Err(format!(
                "a format text of system `{system}` has no `name:` line"
            )),
            (Some(name), None) => Err(format!("format of `{system}:{name}` has no `ID:` line")),
        }
    }
}

/// Where the fields of a ring-buffer page header lie, from the file's `header_page` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLayout {
    pub timestamp_offset: usize,
    pub timestamp_size: usize,
    pub commit_offset: usize,
    /// The kernel's `long`: 8 on 64-bit kernels, 4 on 32-bit ones. The missed-events count,
    /// when stored, is a number of this size right after the committed data.
    pub commit_size: usize,
    pub data_offset: usize,
}

impl PageLayout {
    /// Parses `field: TYPE NAME;\toffset:N;\tsize:N;` lines; the fields needed are `timestamp`,
    /// `commit` and `data`.
    pub fn parse(text: &str) -> Result<PageLayout, String> {
        let mut fields: HashMap<&str, (usize, usize)> = HashMap::new();
        for line in text.lines() {
            let Some(decl) = line.trim().strip_prefix("field:") else {
                continue;
            };
            let mut parts = decl.split(';').map(str::trim);
            let Some(name) = parts.next().and_then(|d| d.split_whitespace().last()) else {
                continue;
            };
            let mut offset = None;
            let mut size = None;
            for p in parts {
                if let Some(v) = p.strip_prefix("offset:") {
                    offset = v.parse::<usize>().ok();
                } else if let Some(v) = p.strip_prefix("size:") {
                    size = v.parse::<usize>().ok();
                }
            }
            if let (Some(o), Some(s)) = (offset, size) {
                // The first declaration wins: `overwrite` shares `commit`'s offset.
                fields.entry(name).or_insert((o, s));
            }
        }
        let get = |n: &str| {
            fields
                .get(n)
                .copied()
                .ok_or_else(|| format!("header_page has no `{n}` field"))
        };
        let (timestamp_offset, timestamp_size) = get("timestamp")?;
        let (commit_offset, commit_size) = get("commit")?;
        let (data_offset, _) = get("data")?;
        if timestamp_size != 8 || !matches!(commit_size, 4 | 8) {
            return Err(format!(
                "header_page has a {timestamp_size}-byte timestamp and a {commit_size}-byte \
                 commit; expected 8 and 4 or 8"
            ));
        }
        if data_offset < commit_offset + commit_size || data_offset < timestamp_offset + 8 {
            return Err(format!(
                "header_page puts the data at {data_offset}, inside the header"
            ));
        }
        Ok(PageLayout {
            timestamp_offset,
            timestamp_size,
            commit_offset,
            commit_size,
            data_offset,
        })
    }
}

/// Parses saved_cmdlines text, one `PID COMM` per line, into `(pid, comm)` sorted by pid (the
/// last line of a pid wins); other lines are skipped, since the mapping only decorates records.
pub fn parse_cmdlines(text: &str) -> Vec<(i32, String)> {
    let mut list = Vec::new();
    for line in text.lines() {
        if let Some((pid, comm)) = line.split_once(' ') {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                list.push((pid, comm.trim_end().to_string()));
            }
        }
    }
    // Stable sort, then keep the last of each pid.
    list.sort_by_key(|&(pid, _)| pid);
    let mut out: Vec<(i32, String)> = Vec::with_capacity(list.len());
    for (pid, comm) in list {
        match out.last_mut() {
            Some(last) if last.0 == pid => last.1 = comm,
            _ => out.push((pid, comm)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER_PAGE: &str = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\
        \tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n\
        \tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\
        \tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;\n";

    #[test]
    fn header_page_of_a_64_bit_kernel() {
        let l = PageLayout::parse(HEADER_PAGE).expect("parses");
        assert_eq!(
            (
                l.timestamp_offset,
                l.commit_offset,
                l.commit_size,
                l.data_offset
            ),
            (0, 8, 8, 16)
        );
    }

    #[test]
    fn header_page_without_data_is_refused() {
        let text = HEADER_PAGE.replace("char data", "char nothing");
        assert_eq!(
            PageLayout::parse(&text),
            Err("header_page has no `data` field".into())
        );
    }

    #[test]
    fn format_name_and_id() {
        let f = EventFormat::parse("kmem", "name: mm_page_alloc\nID: 412\nformat:\n".into())
            .expect("parses");
        assert_eq!((f.name.as_str(), f.id), ("mm_page_alloc", 412));
        assert!(EventFormat::parse("kmem", "name: x\nID: 70000\n".into()).is_err());
        assert!(EventFormat::parse("kmem", "ID: 7\n".into()).is_err());
    }

    #[test]
    fn cmdlines_keep_spaces_in_comm() {
        let m =
            parse_cmdlines("24621 mmql-workload\n1 systemd\n99 kworker/0:1 x\nbad line\n1 init\n");
        let pids: Vec<i32> = m.iter().map(|(p, _)| *p).collect();
        assert_eq!(pids, [1, 99, 24621]);
        assert_eq!(m[0].1, "init");
        assert_eq!(m[1].1, "kworker/0:1 x");
    }
}
