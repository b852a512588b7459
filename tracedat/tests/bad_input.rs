//! Truncated, corrupt, wrong-version and hostile trace.dat files: each gives one error naming the
//! file and a byte offset inside it, never a panic, and no allocation beyond what the file's
//! size bounds.

use std::path::Path;

use tracedat::{Item, TraceDat};

fn fixture(variant: &str) -> Vec<u8> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/alloc-{variant}.dat"));
    std::fs::read(path).expect("fixture")
}

/// Where the first CPU with data keeps its pages in a fixture.
fn cpu_with_data(data: &[u8]) -> tracedat::CpuData {
    let trace = TraceDat::from_bytes("ok", data.to_vec()).expect("fixture");
    let cpus = trace.buffers().iter().flat_map(|b| &b.cpus);
    cpus.clone()
        .find(|c| c.size > 0)
        .expect("a CPU has data")
        .clone()
}

/// Opens and reads every record; the error, if any.
fn read_all(name: &str, data: Vec<u8>) -> Result<usize, tracedat::Error> {
    let trace = TraceDat::from_bytes(name, data)?;
    let mut events = trace.events()?;
    let mut n = 0;
    while let Some(item) = events.next()? {
        if let Item::Record(r) = item {
            assert!(r.raw.len() >= 8);
            n += 1;
        }
    }
    Ok(n)
}

/// The error of a file that must fail, checked to be located inside it.
fn error_of(data: Vec<u8>) -> tracedat::Error {
    let len = data.len() as u64;
    let e = read_all("bad.dat", data).expect_err("the file must be refused");
    assert!(
        e.offset() <= len,
        "offset {} is outside the {len}-byte file: {e}",
        e.offset()
    );
    let text = e.to_string();
    assert!(text.starts_with("bad.dat: at byte "), "{text}");
    e
}

fn put_u32(data: &mut [u8], at: usize, v: u32) {
    data[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(data: &mut [u8], at: usize, v: u64) {
    data[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn every_truncation_is_a_located_error() {
    for variant in ["v7-zstd", "v6", "v7-none"] {
        let whole = fixture(variant);
        let full = read_all(variant, whole.clone()).expect("the whole fixture reads");
        assert!(full > 0);
        // Every length through the metadata, then a stride through the data pages.
        let lengths = (0..whole.len().min(6000)).chain((6000..whole.len()).step_by(13));
        for len in lengths {
            let e = error_of(whole[..len].to_vec());
            assert!(e.offset() <= len as u64, "{variant} cut at {len}: {e}");
        }
    }
}

#[test]
fn wrong_magic_and_version() {
    let mut data = fixture("v6");
    data[3] = b'T';
    let e = error_of(data);
    assert_eq!(e.offset(), 0);
    assert!(e.message.contains("bad magic"), "{e}");

    let mut data = fixture("v6");
    data[10] = b'5';
    let e = error_of(data);
    assert_eq!(e.offset(), 10);
    assert!(
        e.message
            .contains("file version `5` is not supported (only 6 and 7)"),
        "{e}"
    );

    let mut data = fixture("v7-zstd");
    data[18..22].copy_from_slice(b"zlib");
    let e = error_of(data);
    assert_eq!(e.offset(), 18);
    assert!(
        e.message.contains("compression `zlib` is not supported"),
        "{e}"
    );
}

#[test]
fn huge_lengths_are_refused_before_allocating() {
    // v6: the header_page size follows the 18-byte initial format and the `header_page\0` tag.
    let mut data = fixture("v6");
    put_u64(&mut data, 30, u64::MAX / 2);
    let e = error_of(data);
    assert_eq!(e.offset(), 38);
    assert!(e.message.contains("needs 9223372036854775807 bytes"), "{e}");

    // v6: a CPU count of four billion (the word before the `options` tag) makes the CPU tables
    // read until the data runs out, without reserving room for them first.
    let mut data = fixture("v6");
    let tag = data
        .windows(10)
        .position(|w| w == b"options  \0")
        .expect("options tag");
    put_u32(&mut data, tag - 4, u32::MAX);
    let e = error_of(data);
    assert!(e.message.contains("a CPU data offset needs 8 bytes"), "{e}");

    // v7 zstd: a chunk claiming 4 GiB from a few KB is refused as a decompression bomb.
    let data = fixture("v7-zstd");
    let cpu = cpu_with_data(&data);
    let mut bomb = data.clone();
    put_u32(&mut bomb, cpu.offset as usize + 8, 0xffff_f000);
    let e = error_of(bomb);
    assert_eq!(e.offset(), cpu.offset + 4);
    assert!(e.message.contains("claims 4294963200 bytes"), "{e}");

    // ... and one whose compressed size runs past the CPU's data.
    let mut long = data;
    put_u32(&mut long, cpu.offset as usize + 4, u32::MAX);
    let e = error_of(long);
    assert!(
        e.message
            .contains("a compressed chunk needs 4294967295 bytes"),
        "{e}"
    );
}

#[test]
fn offsets_past_the_end() {
    // v7: the first options section's offset follows `zstd\0` `1.5.4\0`.
    let mut data = fixture("v7-zstd");
    let len = data.len() as u64;
    put_u64(&mut data, 29, len + 100);
    let e = error_of(data);
    assert!(e.message.contains("points at byte"), "{e}");

    // A CPU's pages said to lie past the end of the file.
    let data = fixture("v7-none");
    let cpu = cpu_with_data(&data);
    let table = data
        .windows(16)
        .position(|w| w[..8] == cpu.offset.to_le_bytes() && w[8..] == cpu.size.to_le_bytes())
        .expect("the CPU table entry is in the file");
    let mut moved = data;
    put_u64(&mut moved, table, 1 << 40);
    let e = error_of(moved);
    assert!(e.message.contains("runs past the end of the file"), "{e}");
}

#[test]
fn record_with_an_undefined_format() {
    let data = fixture("v6");
    let cpu = cpu_with_data(&data);
    // The first page's first event (data starts 16 bytes into a page on this 64-bit kernel):
    // a short header word, then the record's common_type.
    let first = cpu.offset as usize + 16;
    let mut bad = data;
    let word = u32::from_le_bytes(bad[first..first + 4].try_into().expect("4 bytes"));
    assert!(
        (1..=28).contains(&(word & 0x1f)),
        "first event is a short data event"
    );
    bad[first + 4..first + 6].copy_from_slice(&9999u16.to_le_bytes());
    let e = error_of(bad);
    assert_eq!(e.offset(), first as u64 + 4);
    assert!(
        e.message
            .contains("record claims event type 9999, for which the file has no format"),
        "{e}"
    );
}

#[test]
fn corrupt_pages_and_chunks() {
    // A page committing more data than a page holds.
    let data = fixture("v6");
    let cpu = cpu_with_data(&data);
    let mut bad = data.clone();
    put_u64(&mut bad, cpu.offset as usize + 8, 5000);
    let e = error_of(bad);
    assert!(e.message.contains("page commits 5000 bytes"), "{e}");

    // An event whose length runs past the committed data.
    let mut bad = data;
    let first = cpu.offset as usize + 16;
    put_u32(&mut bad, first, 28); // type_len 28: 112 bytes
    put_u64(&mut bad, cpu.offset as usize + 8, 40);
    let e = error_of(bad);
    assert!(
        e.message.contains("runs past the page's committed data"),
        "{e}"
    );

    // zstd bytes flipped inside a chunk: located at the chunk, inside the file.
    let data = fixture("v7-zstd");
    let cpu = cpu_with_data(&data);
    let mut bad = data;
    let body = cpu.offset as usize + 12;
    for b in &mut bad[body..body + 16] {
        *b ^= 0x5a;
    }
    error_of(bad);
}

/// Deterministic byte flips all over each fixture: any outcome but a panic (or a hang) is fine,
/// and every error is located inside the file.
#[test]
fn random_corruption_never_panics() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for variant in ["v7-zstd", "v6", "v7-none"] {
        let whole = fixture(variant);
        for _ in 0..300 {
            let mut data = whole.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % data.len() as u64) as usize;
                data[at] = next() as u8;
            }
            let len = data.len() as u64;
            if let Err(e) = read_all("flip.dat", data) {
                assert!(e.offset() <= len, "{e}");
            }
        }
    }
}
