//! `placement`: the NUMA node and SMT policy automatic pinning chooses CPUs with.
//!
//! Invariant: it only constrains automatic pinning (`cputune.vcpupin: auto`, validated before
//! it; not `shared`): it has no XML of its own, so it edits, imports and checks nothing.

use super::{GuestDesired, Validation};
use crate::config::raw::RawGuest;
use crate::domain::edit::Editor;
use crate::xmltree::Document;

pub struct Setting;

impl super::GuestSetting for Setting {
    fn validate(&self, v: &mut Validation, g: &RawGuest, out: &mut GuestDesired) {
        let Some(pl) = &g.placement else { return };
        match out.auto_pin.as_mut() {
            Some(a) if a.shared => v.err(
                &["placement"],
                "`placement` constrains dedicated CPUs: a `vcpupin: shared` guest floats over the shared pool",
            ),
            Some(a) => {
                a.numa_node = pl.numa_node;
                a.threads = pl.threads.unwrap_or_default();
            }
            None => v.err(
                &["placement"],
                "`placement` constrains automatic pinning: it needs `cputune.vcpupin: auto`",
            ),
        }
    }

    fn edit(&self, _ed: &mut Editor, _d: &GuestDesired) {}

    fn import(&self, _doc: &Document, _out: &mut RawGuest) {}
}
