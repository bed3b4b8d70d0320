//! `writethrough-many`: `cache: writethrough` on two guests or more.
//!
//! Invariant: a guest counts when a declared disk cache is writethrough or, unless the `"*"`
//! entry sets one, a disk in its XML is; with two such guests or more, each of them fires
//! once.

use crate::config::raw::CacheMode;
use crate::desired::DeviceKey;
use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity, View};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "writethrough-many",
    level: Severity::Warning,
    level_note: None,
    sections: &["6.1"],
    reads: &[Input::Desired, Input::GuestXml],
    scope: Scope::Guests,
    summary: "`cache: writethrough` on two guests or more",
    doc: "The guide's 6.1 notes that `cache=writethrough` slows down, and tends to cause \
          trouble, as the number of guests grows: fit for a few guests with low I/O, not for a \
          host of them. `cache: none` is the general choice.",
};

fn caches(v: &View) -> Vec<CacheMode> {
    let mut c: Vec<CacheMode> = v.gd.disks.values().filter_map(|d| d.cache).collect();
    if v.gd
        .disks
        .get(&DeviceKey::All)
        .and_then(|d| d.cache)
        .is_none()
    {
        if let Some(x) = &v.xml {
            c.extend(x.caches.iter().filter_map(|s| match s.as_str() {
                "writethrough" => Some(CacheMode::Writethrough),
                "writeback" => Some(CacheMode::Writeback),
                _ => None,
            }));
        }
    }
    c
}

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check(&self, cx: &Cx, out: &mut Out) {
        let wt: Vec<&View> = cx
            .views()
            .iter()
            .filter(|v| caches(v).contains(&CacheMode::Writethrough))
            .collect();
        if wt.len() < 2 {
            return;
        }
        for v in &wt {
            out.guest(
                v,
                &["disks"],
                format!(
                    "cache: writethrough on {} guests: it slows down as the number of guests grows; prefer cache: none",
                    wt.len()
                ),
            );
        }
    }
}
