//! The OSD's measure of its storage (`osd::space::measure`): with a declared capacity, what
//! the store holds counts (the block file by the bytes it references, not its length, which
//! grows in large steps and never shrinks), so removing objects gives the space back; without
//! one, the file system's size and free space.

mod common;

use common::*;
use osd::space::measure;
use osd::store::StoreConfig;

const MIB: u64 = 1 << 20;
const CAPACITY: u64 = 1 << 30;

#[test]
fn a_declared_capacity_counts_what_the_store_references_and_gets_removals_back() {
    let dir = TempDir::new("space-measure");
    let (store, _engine) = fjall_store(dir.path(), StoreConfig::default());
    store.create_pg(PG).unwrap();
    let empty = measure(dir.path(), &store, CAPACITY);
    assert_eq!(empty.total, CAPACITY);
    assert_eq!(empty.available, CAPACITY - empty.used);

    for n in 0..4 {
        commit(&store, &obj(&format!("big-{n}")), |t| {
            t.write_full(pattern(4 << 20, n));
        })
        .unwrap();
    }
    store.sync().unwrap();
    let (referenced, file_len) = store.block_usage().expect("a block file");
    assert_eq!(referenced, 16 * MIB);
    let full = measure(dir.path(), &store, CAPACITY);
    let grown = full.used - empty.used;
    assert!(
        (16 * MIB..24 * MIB).contains(&grown),
        "16 MiB written, the measure grew by {grown} (block file {file_len} bytes long)"
    );
    assert_eq!(full.available, CAPACITY - full.used);
    assert!(full.used_ratio() > empty.used_ratio());

    for n in 0..4 {
        commit(&store, &obj(&format!("big-{n}")), |t| {
            t.remove();
        })
        .unwrap();
    }
    store.sync().unwrap();
    let freed = measure(dir.path(), &store, CAPACITY);
    assert!(
        full.used - freed.used >= 15 * MIB,
        "removing 16 MiB freed only {} bytes",
        full.used - freed.used
    );

    let fs = measure(dir.path(), &store, 0);
    assert!(fs.total > CAPACITY, "the file system's size: {fs:?}");
    assert!(fs.available > 0 && fs.available <= fs.total, "{fs:?}");
}
