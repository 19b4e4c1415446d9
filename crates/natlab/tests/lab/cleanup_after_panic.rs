//! A lab's namespaces are gone once it is dropped, also when a panic inside a namespace thread
//! unwinds through the test.

use crate::common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use common::{build, netns_list};
use switchboard_natlab::{LabSpec, NatKind};

#[test]
fn namespaces_are_deleted_when_a_panic_drops_the_lab() {
    let prefix = Mutex::new(String::new());
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let lab = build(LabSpec::new().site(NatKind::PortRestricted, 1).site(NatKind::Open, 1));
        *prefix.lock().expect("lock") = lab.prefix().to_owned();
        let made: Vec<String> = lab.namespaces().map(str::to_owned).collect();
        assert_eq!(made.len(), 5, "public, server, router, two peers: {made:?}");
        let listed = netns_list();
        assert!(made.iter().all(|name| listed.contains(name)), "{made:?} not all in {listed:?}");
        lab.peer(0, 0).netns().run(|| panic!("boom inside the namespace"));
    }));
    let payload = outcome.expect_err("the panic reaches the caller");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom inside the namespace"));

    let prefix = prefix.into_inner().expect("lock");
    assert!(prefix.starts_with(&format!("sbl{}-", std::process::id())), "{prefix}");
    let left: Vec<String> = netns_list().into_iter().filter(|name| name.starts_with(&prefix)).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
