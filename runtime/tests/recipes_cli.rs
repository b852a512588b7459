//! Bundled recipes from the command line, without tracing (no root needed): `mmql recipes`
//! lists each with its purpose, `mmql show` prints what `run` would run and it checks against
//! the snapshot kernel, compactsnoop's options reshape its script, unknown names get a
//! suggestion, and pcp-traffic picks its version by the kernel's tracepoints.

mod support;

use std::path::Path;

use mmql_stdlib::recipes::{self, RecipeOptions};

const SNAPSHOT: &str = "stdlib/snapshot/events";

use support::{mmql_output as mmql, text};

#[test]
fn recipes_lists_every_recipe_with_its_purpose() {
    let out = mmql(&["recipes"]);
    assert!(out.status.success());
    let listing = text(&out.stdout);
    assert_eq!(
        recipes::all().len(),
        25,
        "the brief's 21 reference recipes and examples, compactsnoop, pcp-traffic, zone-reclaim, reclaim-stall-heatmap"
    );
    for r in recipes::all() {
        let line = listing
            .lines()
            .find(|l| l.split_whitespace().next() == Some(r.name))
            .unwrap_or_else(|| panic!("`{}` missing from:\n{listing}", r.name));
        assert!(line.ends_with(&r.summary()), "{line}");
        assert!(
            r.summary().len() > 20,
            "{}: a real purpose, not a stub",
            r.name
        );
    }
}

#[test]
fn show_prints_the_source_and_every_recipe_checks() {
    for r in recipes::all() {
        let out = mmql(&["show", r.name, "--formats", SNAPSHOT]);
        assert!(out.status.success(), "{}: {}", r.name, text(&out.stderr));
        // The snapshot kernel lacks the PCP patch, so pcp-traffic shows its fallback.
        let want = r
            .source(&RecipeOptions::default(), &|_, e| {
                !e.starts_with("mm_page_pcpu_refill") && e != "mm_page_pcpu_drain_zone_locked"
            })
            .expect("no options");
        assert_eq!(text(&out.stdout), want, "{}", r.name);
        let spec = format!("recipe:{}", r.name);
        let check = mmql(&["check", &spec, "--formats", SNAPSHOT]);
        assert!(
            check.status.success(),
            "{}: {}",
            r.name,
            text(&check.stderr)
        );
        assert!(text(&check.stdout).starts_with(&format!("recipe:{}: ok", r.name)));
    }
}

#[test]
fn compactsnoop_options_reshape_the_script() {
    // The code, not the header comment (which describes every option).
    let code = |s: String| {
        s.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let plain = code(text(&mmql(&["show", "compactsnoop"]).stdout));
    let all = mmql(&[
        "show",
        "compactsnoop",
        "-T",
        "-K",
        "-e",
        "--formats",
        SNAPSHOT,
    ]);
    assert!(all.status.success());
    let all = code(text(&all.stdout));
    assert!(
        !plain.contains("FRAGIDX") && !plain.contains("kstack") && !plain.contains("\"TIME(s)\"")
    );
    for col in [
        "\"TIME(s)\"",
        "\"FRAGIDX\"",
        "\"MIN\"",
        "\"LOW\"",
        "\"HIGH\"",
        "\"FREE\"",
        "kstack",
    ] {
        assert!(all.contains(col), "{col} missing:\n{all}");
    }
    // What `show` prints is what `run` would run: the same text checks under its recipe name.
    let spec = "recipe:compactsnoop -T -K -e";
    let check = mmql(&["check", spec, "--formats", SNAPSHOT]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    let out = mmql(&["show", "oom-kills", "-e"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("recipe `oom-kills` takes no options"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn unknown_recipe_names_get_a_suggestion() {
    for cmd in [
        &["run", "compactsnop"][..],
        &["show", "oom-kill"],
        &["check", "recipe:slab-tpo"],
    ] {
        let out = mmql(cmd);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("no recipe named") && err.contains("did you mean"),
            "{cmd:?}: {err}"
        );
    }
    let err = text(&mmql(&["show", "qqqqqqq"]).stderr);
    assert!(err.contains("`mmql recipes` lists them"), "{err}");
}

#[test]
fn recipe_diagnostics_name_the_recipe() {
    // A kernel without `oom:mark_victim`: the error points into `recipe:oom-kills`.
    let dir = tempdir("no-oom");
    copy_event(&dir, "kmem", "kmalloc");
    let out = mmql(&[
        "check",
        "recipe:oom-kills",
        "--formats",
        dir.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("recipe:oom-kills"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pcp_traffic_uses_the_patch_tracepoints_where_they_exist() {
    // The patch's three tracepoints, in the layout its TP_STRUCT__entry gives them.
    let dir = tempdir("pcp-patch");
    copy_event(&dir, "kmem", "mm_page_pcpu_drain");
    let drain =
        std::fs::read_to_string(dir.join("kmem/mm_page_pcpu_drain/format")).expect("copied");
    write_event(
        &dir,
        "mm_page_pcpu_refill",
        &drain.replace("mm_page_pcpu_drain", "mm_page_pcpu_refill"),
    );
    for name in [
        "mm_page_pcpu_refill_zone_locked",
        "mm_page_pcpu_drain_zone_locked",
    ] {
        write_event(&dir, name, &zone_locked_format(name));
    }
    let formats = dir.to_str().expect("utf-8 path");
    let shown = mmql(&["show", "pcp-traffic", "--formats", formats]);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let src = text(&shown.stdout);
    assert!(
        src.contains("on kmem:mm_page_pcpu_refill_zone_locked"),
        "{src}"
    );
    assert!(!text(&shown.stderr).contains("lacks"));
    let plan = mmql(&[
        "explain",
        "--plan",
        "recipe:pcp-traffic",
        "--formats",
        formats,
    ]);
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let plan = text(&plan.stdout);
    for ev in [
        "mm_page_pcpu_refill",
        "mm_page_pcpu_drain",
        "mm_page_pcpu_refill_zone_locked",
        "mm_page_pcpu_drain_zone_locked",
    ] {
        assert!(
            plan.contains(&format!("on kmem:{ev}\n")),
            "{ev} not attached:\n{plan}"
        );
    }
    // Without them: the fallback, and a note naming exactly what is missing.
    let today = mmql(&["show", "pcp-traffic", "--formats", SNAPSHOT]);
    let note = text(&today.stderr);
    assert!(note.contains("lacks kmem:mm_page_pcpu_refill, kmem:mm_page_pcpu_refill_zone_locked, kmem:mm_page_pcpu_drain_zone_locked"), "{note}");
    assert!(text(&today.stdout).contains("on kmem:mm_page_alloc_zone_locked"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mmql-recipes-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn copy_event(dir: &Path, category: &str, name: &str) {
    let from = support::workspace_root()
        .join(SNAPSHOT)
        .join(category)
        .join(name)
        .join("format");
    let to = dir.join(category).join(name);
    std::fs::create_dir_all(&to).expect("event dir");
    std::fs::copy(from, to.join("format")).expect("copy format");
}

fn write_event(dir: &Path, name: &str, format: &str) {
    let to = dir.join("kmem").join(name);
    std::fs::create_dir_all(&to).expect("event dir");
    std::fs::write(to.join("format"), format).expect("write format");
}

fn zone_locked_format(name: &str) -> String {
    format!(
        "name: {name}\nID: 9999\nformat:\n\
         \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
         \tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
         \tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
         \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
         \tfield:int nid;\toffset:8;\tsize:4;\tsigned:1;\n\
         \tfield:int zid;\toffset:12;\tsize:4;\tsigned:1;\n\
         \tfield:unsigned long nr_pages;\toffset:16;\tsize:8;\tsigned:0;\n\n\
         print fmt: \"nid=%d zid=%d nr_pages=%lu\", REC->nid, REC->zid, REC->nr_pages\n"
    )
}
