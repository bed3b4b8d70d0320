//! `cache-blocks-migration`: a cache mode other than `none`/`directsync` on a guest whose
//! storage says it live-migrates.
//!
//! Invariant: only guests with a network or `<shareable/>` disk in their XML; the caches are
//! the declared ones plus, unless the `"*"` entry sets one, the XML's; fires once per guest,
//! naming each offending mode once.

use std::collections::BTreeSet;

use crate::config::raw::CacheMode;
use crate::desired::DeviceKey;
use crate::lint::{Cx, Input, LintDecl, LintRule, Out, Scope, Severity, View};

pub(super) struct Rule;

static DECL: LintDecl = LintDecl {
    id: "cache-blocks-migration",
    level: Severity::Warning,
    level_note: None,
    sections: &["6.1"],
    reads: &[Input::Desired, Input::GuestXml],
    scope: Scope::EachGuest,
    summary: "a cache other than `none`/`directsync` on a guest with network or shareable storage (a guest that live-migrates): the guide calls `none` the only mode that supports migration",
    doc: "Network or shareable disks are what guests that live-migrate between hosts have. The \
          guide's 6.1 names `cache=none` as the mode that supports migration: a host page \
          cache (writethrough, writeback, unsafe) would hold data the destination host cannot \
          see.",
};

impl LintRule for Rule {
    fn decl(&self) -> &'static LintDecl {
        &DECL
    }

    fn check_guest(&self, _cx: &Cx, v: &View, out: &mut Out) {
        if !v.xml.as_ref().is_some_and(|x| x.shared_storage) {
            return;
        }
        let declared = v.gd.disks.values().filter_map(|d| d.cache);
        let observed =
            v.xml
                .iter()
                .flat_map(|x| x.caches.iter())
                .filter_map(|c| match c.as_str() {
                    "writethrough" => Some(CacheMode::Writethrough),
                    "writeback" => Some(CacheMode::Writeback),
                    "unsafe" => Some(CacheMode::Unsafe),
                    _ => None,
                });
        let all_declared =
            v.gd.disks
                .get(&DeviceKey::All)
                .and_then(|d| d.cache)
                .is_some();
        let bad: BTreeSet<&str> = declared
            .chain(observed.filter(|_| !all_declared))
            .filter(|c| !matches!(c, CacheMode::None | CacheMode::Directsync))
            .map(|c| c.as_str())
            .collect();
        if !bad.is_empty() {
            out.guest(
                v,
                &["disks"],
                format!(
                    "cache: {} on a guest with shared (network or shareable) storage, which suggests it live-migrates: cache: none is the only mode that supports migration",
                    bad.into_iter().collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
}
