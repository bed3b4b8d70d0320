//! `iothreads`: the number of I/O threads (`<iothreads>N</iothreads>`, and the
//! `<iothreadids>` list that names them).
//!
//! Invariant: an absent element counts as 0 threads; libvirt reads as many threads as the
//! larger of the count and the listed ids, and fills unlisted ones with the lowest free ids,
//! so a declared count `N` keeps only the listed ids `1..=N` (the rest libvirt adds): the
//! guest then has exactly the ids `1..=N`, as the YAML's I/O thread ids assume. Whatever
//! still names an id above `N` once the plan is applied (a disk's or controller's
//! `iothread`, an `<iothreadpin>` or `<iothreadsched>`) is an issue naming it, since libvirt
//! refuses the definition. The count changes at the next start only.

use super::{DeviceKey, GuestDesired, GuestKey, Validation};
use crate::config::raw::RawGuest;
use crate::cpuset::CpuSet;
use crate::domain::edit::{devices, parse_u32, Editor};
use crate::domain::GuestIssue;
use crate::xmltree::{Document, NodeId};

pub struct Setting;

/// The I/O thread count the XML has (as libvirt reads it: at least as many as it lists).
pub(crate) fn observed(doc: &Document) -> Option<u32> {
    let count = doc
        .child(doc.root(), "iothreads")
        .and_then(|e| parse_u32(Some(doc.text(e))));
    let listed = listed(doc).len();
    match (count, listed) {
        (c, 0) => c,
        (c, n) => Some(c.unwrap_or(0).max(u32::try_from(n).unwrap_or(u32::MAX))),
    }
}

/// The `<iothreadids>` entries: (id, element); an id that does not parse is `None`.
fn listed(doc: &Document) -> Vec<(Option<u32>, NodeId)> {
    doc.child(doc.root(), "iothreadids")
        .map(|l| {
            doc.children_named(l, "iothread")
                .into_iter()
                .map(|t| (parse_u32(doc.attr(t, "id")), t))
                .collect()
        })
        .unwrap_or_default()
}

impl super::GuestSetting for Setting {
    fn validate(&self, _v: &mut Validation, g: &RawGuest, out: &mut GuestDesired) {
        out.iothreads = g.iothreads;
    }

    fn edit(&self, ed: &mut Editor, d: &GuestDesired) {
        let Some(want) = d.iothreads else { return };
        dangling(ed, d, want);
        let root = ed.root();
        let el = ed.doc.child(root, "iothreads");
        let ids = listed(&ed.doc);
        let now = observed(&ed.doc);
        // Listed ids above the count (or that do not parse) would keep more threads alive.
        let above: Vec<(Option<u32>, NodeId)> = ids
            .iter()
            .filter(|(id, _)| id.is_none_or(|i| i == 0 || i > want))
            .cloned()
            .collect();
        if now.unwrap_or(0) == want && above.is_empty() {
            return;
        }
        let before = if now == Some(want) {
            // The count is right, the ids are not: show them.
            let shown: Vec<String> = ids
                .iter()
                .map(|(_, t)| ed.doc.attr(*t, "id").unwrap_or_default())
                .collect();
            Some(format!("{want} (ids {})", shown.join(", ")))
        } else {
            match el {
                Some(e) if ids.is_empty() => Some(ed.doc.text(e)),
                _ => now.map(|n| n.to_string()),
            }
        };
        ed.push_change(GuestKey::Iothreads, before, Some(want.to_string()));
        let e = ed.domain_child("iothreads");
        ed.doc.set_text(e, &want.to_string());
        let gone: Vec<NodeId> = above.iter().map(|(_, t)| *t).collect();
        ed.doc.remove_many(&gone);
        if let Some(l) = ed.doc.child(root, "iothreadids") {
            ed.prune_if_empty(l);
        }
    }

    fn import(&self, doc: &Document, out: &mut RawGuest) {
        // Only ids 1..=N are what the YAML's count means.
        let n = observed(doc);
        let ids = listed(doc);
        if ids
            .iter()
            .all(|(id, _)| id.is_some_and(|i| i > 0 && n.is_some_and(|n| i <= n)))
        {
            out.iothreads = n;
        }
    }
}

/// What names an I/O thread id above `want` once the plan is applied: an issue naming each.
fn dangling(ed: &mut Editor, d: &GuestDesired, want: u32) {
    let doc = &ed.doc;
    let over = |id: Option<u32>| id.is_some_and(|i| i > want);
    let mut uses: Vec<String> = Vec::new();
    for disk in devices(doc, "disk") {
        let dev = doc
            .child(disk, "target")
            .and_then(|t| doc.attr(t, "dev"))
            .unwrap_or_else(|| "(no target)".into());
        let is_disk = doc.attr(disk, "device").is_none_or(|k| k == "disk");
        // A declared iothread replaces the XML's (and is validated against the count).
        let declared = d
            .disks
            .get(&DeviceKey::One(dev.clone()))
            .and_then(|o| o.iothread)
            .or_else(|| {
                d.disks
                    .get(&DeviceKey::All)
                    .filter(|_| is_disk)
                    .and_then(|a| a.iothread)
            });
        let Some(drv) = doc.child(disk, "driver") else {
            continue;
        };
        let own = declared.or(parse_u32(doc.attr(drv, "iothread")));
        if over(own) {
            uses.push(format!("disk {dev} (iothread {})", own.unwrap_or(0)));
        }
        for t in doc
            .child(drv, "iothreads")
            .map(|l| doc.children_named(l, "iothread"))
            .unwrap_or_default()
        {
            let id = parse_u32(doc.attr(t, "id"));
            if over(id) {
                uses.push(format!("disk {dev} (<iothreads> id {})", id.unwrap_or(0)));
            }
        }
    }
    for c in devices(doc, "controller") {
        let id = doc
            .child(c, "driver")
            .and_then(|drv| parse_u32(doc.attr(drv, "iothread")));
        if over(id) {
            let kind = doc.attr(c, "type").unwrap_or_default();
            let index = doc.attr(c, "index").unwrap_or_default();
            uses.push(format!(
                "controller {kind} {index} (iothread {})",
                id.unwrap_or(0)
            ));
        }
    }
    if let Some(ct) = doc.child(doc.root(), "cputune") {
        // A declared iothreadpin map is authoritative (and validated against the count).
        if d.iothreadpin.is_none() {
            for p in doc.children_named(ct, "iothreadpin") {
                let id = parse_u32(doc.attr(p, "iothread"));
                if over(id) {
                    uses.push(format!("cputune iothreadpin {}", id.unwrap_or(0)));
                }
            }
        }
        for s in doc.children_named(ct, "iothreadsched") {
            let ids = doc
                .attr(s, "iothreads")
                .and_then(|v| v.parse::<CpuSet>().ok());
            if let Some(ids) = ids.filter(|i| i.highest() > want) {
                uses.push(format!("cputune iothreadsched {ids}"));
            }
        }
    }
    if !uses.is_empty() {
        ed.issue(
            &["iothreads"],
            GuestIssue::IothreadInUse(want, uses.join(", ")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{changes, converges, domain, issues, plan};

    #[test]
    fn lowering_the_count_removes_the_listed_ids_above_it() {
        let xml = domain(
            "<iothreads>2</iothreads>\n  <iothreadids>\n    <iothread id='1'/>\n    <iothread id='2'/>\n  </iothreadids>",
        );
        let p = converges("    iothreads: 1\n", &xml);
        assert_eq!(
            changes(&p),
            [("iothreads".into(), Some("2".into()), Some("1".into()))]
        );
        assert!(p.new_xml.contains("<iothread id='1'/>"), "{}", p.new_xml);
        assert!(!p.new_xml.contains("<iothread id='2'/>"), "{}", p.new_xml);
        // To zero: the list goes.
        let p = converges("    iothreads: 0\n", &xml);
        assert!(!p.new_xml.contains("iothreadids"), "{}", p.new_xml);
    }

    #[test]
    fn listed_ids_outside_one_to_the_count_go_even_when_the_count_matches() {
        // libvirt's ids 1 and 5: `iothreads: 2` means ids 1 and 2 (libvirt adds 2).
        let xml = domain(
            "<iothreads>2</iothreads>\n  <iothreadids>\n    <iothread id='1'/>\n    <iothread id='5'/>\n  </iothreadids>",
        );
        let p = converges("    iothreads: 2\n", &xml);
        assert_eq!(
            changes(&p),
            [(
                "iothreads".into(),
                Some("2 (ids 1, 5)".into()),
                Some("2".into())
            )]
        );
        // More ids listed than the count: libvirt reads as many as it lists.
        let xml = domain(
            "<iothreads>1</iothreads>\n  <iothreadids>\n    <iothread id='1'/>\n    <iothread id='2'/>\n  </iothreadids>",
        );
        assert_eq!(changes(&plan("    iothreads: 2\n", &xml).unwrap()), []);
    }

    #[test]
    fn what_still_names_a_removed_id_is_a_located_error_naming_it() {
        let xml = domain(
            "<iothreads>3</iothreads>\n  <cputune>\n    <iothreadpin iothread='3' cpuset='1'/>\n  </cputune>\n  \
             <devices>\n    <disk type='file' device='disk'>\n      <driver name='qemu' iothread='2'/>\n      \
             <target dev='vda' bus='virtio'/>\n    </disk>\n    <controller type='scsi' index='0' model='virtio-scsi'>\n      \
             <driver iothread='3'/>\n    </controller>\n  </devices>",
        );
        let e = plan("    iothreads: 1\n", &xml).unwrap_err();
        assert_eq!(
            issues(&e),
            ["guests.g.iothreads: iothreads: 1 removes I/O threads still in use: disk vda (iothread 2), controller scsi 0 (iothread 3), cputune iothreadpin 3"]
        );
        // Declaring what replaces them plans.
        let body = "    iothreads: 1\n    cputune: { iothreadpin: { 1: \"0\" } }\n    disks: { vda: { iothread: 1 } }\n";
        let e = plan(body, &xml).unwrap_err();
        assert_eq!(
            issues(&e),
            ["guests.g.iothreads: iothreads: 1 removes I/O threads still in use: controller scsi 0 (iothread 3)"]
        );
        let ok = xml.replace("<driver iothread='3'/>", "<driver/>");
        converges(body, &ok);
    }
}
