//! The serialized form of the embedded [`CrushMap`].
//!
//! `CrushMap::class_buckets` is keyed by a `(bucket, class)` tuple, which self-describing
//! formats such as JSON cannot use as an object key, so the cluster map writes that one field
//! as a list of records and everything else as the crush crate derives it. Both directions
//! destructure or build `CrushMap` field by field, so a field added to it upstream fails to
//! compile here instead of being dropped silently.

use std::collections::BTreeMap;

use crush::{Bucket, ChooseArgs, CrushMap, Device, Rule, Tunables};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One `(original bucket, class) -> shadow bucket` record.
#[derive(Serialize, Deserialize)]
struct ClassBucket {
    original: i32,
    class: i32,
    shadow: i32,
}

#[derive(Serialize)]
struct CrushWireRef<'a> {
    tunables: &'a Tunables,
    devices: &'a BTreeMap<i32, Device>,
    types: &'a BTreeMap<i32, String>,
    buckets: &'a BTreeMap<i32, Bucket>,
    rules: &'a BTreeMap<u32, Rule>,
    classes: &'a BTreeMap<i32, String>,
    class_buckets: Vec<ClassBucket>,
    choose_args: &'a BTreeMap<i64, ChooseArgs>,
}

#[derive(Deserialize)]
struct CrushWire {
    tunables: Tunables,
    devices: BTreeMap<i32, Device>,
    types: BTreeMap<i32, String>,
    buckets: BTreeMap<i32, Bucket>,
    rules: BTreeMap<u32, Rule>,
    classes: BTreeMap<i32, String>,
    class_buckets: Vec<ClassBucket>,
    choose_args: BTreeMap<i64, ChooseArgs>,
}

/// `serialize_with` for a `CrushMap` field.
pub(crate) fn serialize<S: Serializer>(map: &CrushMap, serializer: S) -> Result<S::Ok, S::Error> {
    let CrushMap {
        tunables,
        devices,
        types,
        buckets,
        rules,
        classes,
        class_buckets,
        choose_args,
    } = map;
    CrushWireRef {
        tunables,
        devices,
        types,
        buckets,
        rules,
        classes,
        class_buckets: class_buckets
            .iter()
            .map(|(&(original, class), &shadow)| ClassBucket {
                original,
                class,
                shadow,
            })
            .collect(),
        choose_args,
    }
    .serialize(serializer)
}

/// `deserialize_with` for a `CrushMap` field.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<CrushMap, D::Error> {
    let wire = CrushWire::deserialize(deserializer)?;
    Ok(CrushMap {
        tunables: wire.tunables,
        devices: wire.devices,
        types: wire.types,
        buckets: wire.buckets,
        rules: wire.rules,
        classes: wire.classes,
        class_buckets: wire
            .class_buckets
            .into_iter()
            .map(|record| ((record.original, record.class), record.shadow))
            .collect(),
        choose_args: wire.choose_args,
    })
}

/// The same for a boxed `CrushMap` (`#[serde(with = "crate::crush_wire::boxed")]`).
pub(crate) mod boxed {
    use crush::CrushMap;
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        map: &CrushMap,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        super::serialize(map, serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Box<CrushMap>, D::Error> {
        super::deserialize(deserializer).map(Box::new)
    }
}

/// The same for an optional boxed `CrushMap` (an incremental's replacement map).
pub(crate) mod optional {
    use crush::CrushMap;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    struct Borrowed<'a>(&'a CrushMap);

    impl Serialize for Borrowed<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            super::serialize(self.0, serializer)
        }
    }

    #[derive(Deserialize)]
    struct Owned(#[serde(deserialize_with = "super::deserialize")] CrushMap);

    pub(crate) fn serialize<S: Serializer>(
        map: &Option<Box<CrushMap>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        map.as_deref().map(Borrowed).serialize(serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Box<CrushMap>>, D::Error> {
        Ok(Option::<Owned>::deserialize(deserializer)?.map(|owned| Box::new(owned.0)))
    }
}
