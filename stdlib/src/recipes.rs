//! The bundled recipes: ready-made scripts for the diagnostic questions of the mm tracepoint
//! reference, bcc's compactsnoop, the PCP refill patch and the zone-reclaim field report.
//! Registry in (the `.mmql` files of `stdlib/recipes/`, embedded with `include_str!`, and two
//! generators), recipe source text out.
//!
//! Every recipe's first line is `# NAME: one-line purpose`; the list command reads the
//! purpose from there, so the file stays the single place that says what a recipe is for.

mod compactsnoop;

/// Options a recipe may take. Only compactsnoop takes any; `-p` and `-d` are `mmql run`'s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecipeOptions {
    /// `-T`: a timestamp column.
    pub timestamps: bool,
    /// `-K`: the kernel stack under each line.
    pub kernel_stack: bool,
    /// `-e`: extended columns.
    pub extended: bool,
}

impl RecipeOptions {
    fn any(&self) -> bool {
        self.timestamps || self.kernel_stack || self.extended
    }
}

/// Where a recipe's source comes from.
enum Body {
    /// One file, the same on every kernel.
    File(&'static str),
    /// Generated from the options.
    Generated(fn(&RecipeOptions) -> String),
    /// Chosen by the running kernel: the first file when every listed `category:event`
    /// exists, the second otherwise.
    IfEvents(
        &'static [(&'static str, &'static str)],
        &'static str,
        &'static str,
    ),
}

pub struct Recipe {
    pub name: &'static str,
    body: Body,
    /// Which options it takes (`-T`, `-K`, `-e`).
    pub takes_options: bool,
}

macro_rules! file {
    ($name:literal) => {
        Recipe {
            name: $name,
            body: Body::File(include_str!(concat!("../recipes/", $name, ".mmql"))),
            takes_options: false,
        }
    };
}

/// The tracepoints the PCP refill patch adds.
const PCP_PATCH_EVENTS: &[(&str, &str)] = &[
    ("kmem", "mm_page_pcpu_refill"),
    ("kmem", "mm_page_pcpu_refill_zone_locked"),
    ("kmem", "mm_page_pcpu_drain_zone_locked"),
];

/// Every recipe, in the order `mmql recipes` lists them: the reference's five recipes, its
/// per-tracepoint examples in the reference's order, then the other documents.
static RECIPES: &[Recipe] = &[
    file!("direct-reclaim-latency"),
    file!("reclaim-stall-heatmap"),
    file!("kmalloc-growth"),
    file!("thp-collapse"),
    file!("oom-kills"),
    file!("compaction-health"),
    file!("alloc-order-hist"),
    file!("alloc-free-balance"),
    file!("pcp-exhaustion"),
    file!("extfrag"),
    file!("kswapd-wakes"),
    file!("kswapd-cycle"),
    file!("lru-isolate"),
    file!("shrink-inactive"),
    file!("write-folio"),
    file!("oom-score-adj"),
    file!("compaction-duration"),
    file!("compaction-efficiency"),
    file!("khugepaged-scan"),
    file!("slab-top"),
    file!("slab-balance"),
    file!("kmalloc-waste"),
    Recipe {
        name: "compactsnoop",
        body: Body::Generated(compactsnoop::source),
        takes_options: true,
    },
    Recipe {
        name: "pcp-traffic",
        body: Body::IfEvents(
            PCP_PATCH_EVENTS,
            include_str!("../recipes/pcp-traffic.mmql"),
            include_str!("../recipes/pcp-traffic-fallback.mmql"),
        ),
        takes_options: false,
    },
    file!("zone-reclaim"),
];

pub fn all() -> &'static [Recipe] {
    RECIPES
}

pub fn find(name: &str) -> Option<&'static Recipe> {
    RECIPES.iter().find(|r| r.name == name)
}

impl Recipe {
    /// The one-line purpose, from the first line of the default source.
    pub fn summary(&self) -> String {
        let src = self.default_source();
        let first = src.lines().next().unwrap_or_default();
        first
            .strip_prefix("# ")
            .and_then(|l| l.strip_prefix(self.name))
            .and_then(|l| l.strip_prefix(": "))
            .unwrap_or(first)
            .to_string()
    }

    /// The source for these options on a kernel where `has_event(category, name)` says which
    /// tracepoints exist. Err names the options this recipe does not take.
    pub fn source(
        &self,
        opts: &RecipeOptions,
        has_event: &dyn Fn(&str, &str) -> bool,
    ) -> Result<String, String> {
        if opts.any() && !self.takes_options {
            return Err(format!(
                "recipe `{}` takes no options (-T, -K and -e are compactsnoop's; -p, -d, -f, -o work with every recipe)",
                self.name
            ));
        }
        Ok(match &self.body {
            Body::File(s) => s.to_string(),
            Body::Generated(f) => f(opts),
            Body::IfEvents(events, with, without) => {
                if events.iter().all(|(c, e)| has_event(c, e)) {
                    with.to_string()
                } else {
                    without.to_string()
                }
            }
        })
    }

    /// The source with no options, for a kernel with every event it could use.
    fn default_source(&self) -> String {
        self.source(&RecipeOptions::default(), &|_, _| true)
            .unwrap_or_default()
    }

    /// Which events a kernel-dependent recipe looks for (empty for the others), so callers
    /// can say what is missing.
    pub fn optional_events(&self) -> &'static [(&'static str, &'static str)] {
        match &self.body {
            Body::IfEvents(events, ..) => events,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_files_say_their_name() {
        for (i, r) in RECIPES.iter().enumerate() {
            assert!(
                RECIPES[..i].iter().all(|o| o.name != r.name),
                "{} twice",
                r.name
            );
            let src = r.default_source();
            assert!(
                src.starts_with(&format!("# {}: ", r.name)),
                "{}: the first line must be `# {}: purpose`",
                r.name,
                r.name
            );
            assert!(
                !r.summary().is_empty() && r.summary().len() < 120,
                "{}",
                r.name
            );
            // The header says what the recipe reads and how to read its output.
            assert!(src.contains("# Events:"), "{}: no `# Events:` line", r.name);
            assert!(src.contains("# Output:"), "{}: no `# Output:` line", r.name);
            assert!(
                src.contains("Changed for this kernel")
                    || src.contains("lacks")
                    || src.contains("needs its tracepoints"),
                "{}",
                r.name
            );
        }
    }

    #[test]
    fn options_only_where_taken() {
        let t = RecipeOptions {
            timestamps: true,
            ..RecipeOptions::default()
        };
        let all = |_: &str, _: &str| true;
        assert!(find("oom-kills").is_some_and(|r| r.source(&t, &all).is_err()));
        let cs = find("compactsnoop").expect("compactsnoop");
        assert!(cs.source(&t, &all).is_ok_and(|s| s.contains("TIME(s)")));
    }

    #[test]
    fn pcp_traffic_follows_the_kernel() {
        let r = find("pcp-traffic").expect("pcp-traffic");
        let patched = r
            .source(&RecipeOptions::default(), &|_, _| true)
            .unwrap_or_default();
        assert!(patched.contains("on kmem:mm_page_pcpu_refill_zone_locked"));
        let today = r
            .source(&RecipeOptions::default(), &|_, e| {
                e == "mm_page_pcpu_drain" || e == "mm_page_alloc_zone_locked"
            })
            .unwrap_or_default();
        assert!(today.contains("lacks kmem:mm_page_pcpu_refill"));
        assert!(!today.contains("on kmem:mm_page_pcpu_refill"));
        assert_eq!(r.optional_events().len(), 3);
    }
}
