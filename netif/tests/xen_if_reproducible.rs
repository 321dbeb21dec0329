//! `netif/src/proto/xen_if.rs` is exactly what `scripts/gen-xen-if` generates
//! from the installed Xen headers (skipped where bindgen 0.73.2 or the
//! headers are missing).

use std::path::Path;
use std::process::Command;

#[test]
fn generated_bindings_are_up_to_date() {
    let top = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if !Path::new("/usr/include/xen/io/netif.h").exists() {
        eprintln!("skipped: Xen headers (libxen-dev) not installed");
        return;
    }
    let out = match Command::new("bash")
        .arg(top.join("scripts/gen-xen-if"))
        .arg("--check")
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipped: cannot run scripts/gen-xen-if: {e}");
            return;
        }
    };
    // Exit 2: bindgen missing or another version.
    if out.status.code() == Some(2) || out.status.code() == Some(127) {
        eprintln!("skipped: {}", String::from_utf8_lossy(&out.stderr));
        return;
    }
    assert!(
        out.status.success(),
        "xen_if.rs differs from a fresh generation:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
