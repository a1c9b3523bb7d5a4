//! The state machine and command translation without Raft: arguments are checked and named,
//! invalid commands change nothing, applying is deterministic, snapshots round-trip.

use monitor::commands::translate;
use monitor::config::PoolDefaults;
use monitor::node::{ApplyContext, StateMachine};
use monitor::state::{CommandError, LocalInfo, MapMachine, MapView, Member, MonCommand, OsdBoot};
use proto::mon::command::Kind;
use proto::mon::{
    Command, CrushAddBucket, CrushMove, CrushReweight, CrushRuleCreateReplicated, CrushSetMap,
    MonAdd, OsdIds, OsdReweight, PoolCreate, PoolSet,
};
use tokio::sync::watch;

fn machine() -> (MapMachine, watch::Receiver<MapView>) {
    machine_with_failure_domain("host")
}

fn machine_with_failure_domain(failure_domain: &str) -> (MapMachine, watch::Receiver<MapView>) {
    let (sender, receiver) = watch::channel(MapView::default());
    let local = LocalInfo {
        id: 1,
        fsid: None,
        initial_members: vec![(1, "a".to_owned())],
        resolve_address: Box::new(|_| Some("127.0.0.1:7100".to_owned())),
        history_limit: 10,
        failure_domain: failure_domain.to_owned(),
    };
    (MapMachine::new(local, sender), receiver)
}

fn context(index: u64) -> ApplyContext {
    ApplyContext {
        index,
        term: 1,
        proposed_at_ms: 1_700_000_000_000 + index,
        voters: vec![1],
    }
}

fn created() -> (MapMachine, watch::Receiver<MapView>) {
    let (mut machine, view) = machine();
    let duties = machine.leader_duties();
    assert_eq!(
        duties.len(),
        1,
        "an empty state asks the leader to create the cluster"
    );
    machine.validate(&duties[0]).unwrap();
    let output = machine.apply(&duties[0], &context(2)).unwrap();
    assert_eq!(output.epoch, 1);
    assert!(machine.leader_duties().is_empty());
    (machine, view)
}

fn command(kind: Kind) -> Command {
    Command { kind: Some(kind) }
}

fn run(machine: &mut MapMachine, index: u64, kind: Kind) -> Result<u32, CommandError> {
    let map = machine.map().map(|map| (**map).clone());
    let command = translate(&command(kind), map.as_ref(), &PoolDefaults::default())?;
    machine.validate(&command)?;
    machine
        .apply(&command, &context(index))
        .map(|output| output.epoch)
}

fn argument_of(error: &CommandError) -> String {
    monitor::error::kind_of(error).1
}

#[test]
fn invalid_arguments_are_named_and_change_nothing() {
    let (mut machine, view) = created();
    let pool = |name: &str, pg_num, size| {
        Kind::PoolCreate(PoolCreate {
            name: name.to_owned(),
            pg_num: Some(pg_num),
            size: Some(size),
            min_size: None,
            crush_rule: String::new(),
        })
    };
    assert_eq!(run(&mut machine, 3, pool("rbd", 8, 3)).unwrap(), 2);
    let cases: Vec<(Kind, &str)> = vec![
        (pool("", 8, 3), "name"),
        (pool("x", 100_000, 3), "pg_num"),
        (pool("x", 8, 99), "size"),
        (pool("x", 0, 3), "pg_num"),
        (pool("x", 8, 0), "size"),
        (
            Kind::PoolCreate(PoolCreate {
                name: "x".into(),
                pg_num: Some(8),
                size: Some(3),
                min_size: Some(0),
                crush_rule: String::new(),
            }),
            "min_size",
        ),
        (
            Kind::PoolCreate(PoolCreate {
                name: "x".into(),
                pg_num: Some(8),
                size: Some(2),
                min_size: Some(3),
                crush_rule: String::new(),
            }),
            "min_size",
        ),
        (pool("rbd", 8, 3), "name"),
        (
            Kind::PoolSet(PoolSet {
                name: "rbd".into(),
                key: "size".into(),
                value: "many".into(),
            }),
            "size",
        ),
        (
            Kind::PoolSet(PoolSet {
                name: "rbd".into(),
                key: "colour".into(),
                value: "blue".into(),
            }),
            "key",
        ),
        (Kind::OsdIn(OsdIds { ids: vec![] }), "ids"),
        (Kind::OsdOut(OsdIds { ids: vec![3] }), "ids"),
        (
            Kind::OsdReweight(OsdReweight { id: 0, weight: 1.5 }),
            "weight",
        ),
        (Kind::SetFlag("nothing".into()), "flag"),
        (
            Kind::CrushReweight(CrushReweight {
                name: "default".into(),
                weight: f64::NAN,
            }),
            "weight",
        ),
        (
            Kind::CrushAddBucket(CrushAddBucket {
                name: "rack1".into(),
                bucket_type: "galaxy".into(),
                location: Default::default(),
            }),
            "type",
        ),
        (
            Kind::CrushMove(CrushMove {
                name: "nowhere".into(),
                location: [("root".to_owned(), "default".to_owned())].into(),
            }),
            "name",
        ),
        (
            Kind::CrushSetMap(CrushSetMap {
                text: "this is not a crush map".into(),
            }),
            "text",
        ),
        (
            Kind::MonAdd(MonAdd {
                id: 2,
                addr: "nowhere".into(),
                name: String::new(),
            }),
            "addr",
        ),
    ];
    for (kind, argument) in cases {
        let description = format!("{kind:?}");
        let error = run(&mut machine, 4, kind).expect_err(&description);
        assert_eq!(argument_of(&error), argument, "{description}: {error}");
        assert!(!error.to_string().is_empty());
    }
    assert_eq!(view.borrow().epoch(), 2, "no invalid command made an epoch");
}

#[test]
fn crush_edits_apply_to_the_map() {
    let (mut machine, _) = created();
    run(
        &mut machine,
        3,
        Kind::CrushAddBucket(CrushAddBucket {
            name: "rack1".into(),
            bucket_type: "rack".into(),
            location: [("root".to_owned(), "default".to_owned())].into(),
        }),
    )
    .unwrap();
    run(
        &mut machine,
        4,
        Kind::CrushRuleCreateReplicated(CrushRuleCreateReplicated {
            name: "by_rack".into(),
            root: "default".into(),
            failure_domain: "rack".into(),
            device_class: String::new(),
        }),
    )
    .unwrap();
    let epoch = run(
        &mut machine,
        5,
        Kind::PoolCreate(PoolCreate {
            name: "racked".into(),
            pg_num: Some(8),
            size: Some(2),
            min_size: None,
            crush_rule: "by_rack".into(),
        }),
    )
    .unwrap();
    assert_eq!(epoch, 4);
    let map = machine.map().unwrap().clone();
    let rule = map.crush().rule_by_name("by_rack").unwrap();
    assert_eq!(map.pool_by_name("racked").unwrap().crush_rule, rule.id);
    assert!(map.crush().bucket_by_name("rack1").is_some());
    // The rule is in use: removing it is refused.
    let error = run(
        &mut machine,
        6,
        Kind::CrushRuleRemove(proto::mon::CrushRuleRemove {
            name: "by_rack".into(),
        }),
    )
    .unwrap_err();
    assert_eq!(argument_of(&error), "crush_rule", "{error}");
    // Ceph text round trip: set-map with the printed map changes nothing.
    let text = crush::text::print(map.crush());
    let same = run(&mut machine, 7, Kind::CrushSetMap(CrushSetMap { text })).unwrap();
    assert_eq!(same, 4, "an identical crush map makes no new epoch");
}

#[test]
fn applying_is_deterministic_and_snapshots_round_trip() {
    let (mut first, _) = created();
    let (mut second, _) = created();
    let commands = [
        Kind::PoolCreate(PoolCreate {
            name: "a".into(),
            pg_num: Some(16),
            size: Some(2),
            min_size: Some(1),
            crush_rule: String::new(),
        }),
        Kind::SetFlag("noout".into()),
        Kind::PoolSet(PoolSet {
            name: "a".into(),
            key: "size".into(),
            value: "3".into(),
        }),
    ];
    // The fsid is random per leader duty; make both replicas apply the same creation.
    let (mut first_base, _) = machine();
    let create = first_base.leader_duties().remove(0);
    first_base.apply(&create, &context(2)).unwrap();
    first.restore(&first_base.snapshot()).unwrap();
    second.restore(&first_base.snapshot()).unwrap();
    for (index, kind) in commands.into_iter().enumerate() {
        let a = run(&mut first, 10 + index as u64, kind.clone()).unwrap();
        let b = run(&mut second, 10 + index as u64, kind).unwrap();
        assert_eq!(a, b);
    }
    assert_eq!(first.snapshot(), second.snapshot(), "byte-identical state");
    let (mut restored, view) = machine();
    restored.restore(&first.snapshot()).unwrap();
    assert_eq!(restored.snapshot(), first.snapshot());
    assert_eq!(view.borrow().epoch(), 4);
    assert_eq!(
        view.borrow().history.len(),
        3,
        "incrementals survive the snapshot"
    );
    assert!(restored.restore(b"{\"format\": 99}").is_err());
}

#[test]
fn no_op_commands_make_no_epoch_and_stale_policy_decisions_are_refused() {
    let (mut machine, _) = created();
    assert_eq!(
        run(&mut machine, 3, Kind::SetFlag("noout".into())).unwrap(),
        2
    );
    assert_eq!(
        run(&mut machine, 4, Kind::SetFlag("noout".into())).unwrap(),
        2
    );
    let stale = MonCommand::PolicyMarkDown { id: 0, up_from: 1 };
    assert!(matches!(
        machine.validate(&stale),
        Err(CommandError::Change(_))
    ));
    let member = MonCommand::AddMonitor(Member {
        id: 1,
        name: "again".into(),
        addr: "127.0.0.1:1".into(),
    });
    assert!(matches!(
        machine.validate(&member),
        Err(CommandError::MonitorExists { .. })
    ));
}

#[test]
fn commands_before_creation_say_the_cluster_is_not_ready() {
    let (mut machine, _) = machine();
    let error = run(&mut machine, 1, Kind::SetFlag("noout".into())).unwrap_err();
    assert!(matches!(error, CommandError::NotCreated), "{error}");
}

/// Creates the cluster with `failure_domain`, boots `osds` OSDs all on host `h1`, creates
/// a size-3 pool, and returns the acting sets of its PGs.
fn single_host_acting_sets(failure_domain: &str, osds: u8) -> (crush::Rule, Vec<Vec<i32>>) {
    let (mut machine, _) = machine_with_failure_domain(failure_domain);
    let duties = machine.leader_duties();
    machine.validate(&duties[0]).unwrap();
    machine.apply(&duties[0], &context(2)).unwrap();
    let mut index = 3;
    for n in 0..osds {
        let boot = MonCommand::Boot(OsdBoot {
            uuid: format!("00000000-0000-4000-8000-0000000000{n:02x}")
                .parse()
                .unwrap(),
            id: None,
            addr: format!("127.0.0.1:{}", 7200 + u16::from(n)),
            host: "h1".to_owned(),
            location: Vec::new(),
            crush_weight: 0x10000,
            device_class: None,
        });
        machine.validate(&boot).unwrap();
        machine.apply(&boot, &context(index)).unwrap();
        index += 1;
    }
    run(
        &mut machine,
        index,
        Kind::PoolCreate(PoolCreate {
            name: "data".into(),
            pg_num: Some(32),
            size: Some(3),
            min_size: None,
            crush_rule: String::new(),
        }),
    )
    .unwrap();
    let map = machine.map().unwrap().clone();
    let rule = map.crush().rules[&0].clone();
    let pool = map.pool_by_name("data").unwrap();
    let mut mapper = map.pg_mapper();
    let acting = pool
        .pgs()
        .map(|pgid| mapper.map(pgid).unwrap().acting)
        .collect();
    (rule, acting)
}

#[test]
fn the_default_rule_separates_replicas_across_the_configured_failure_domain() {
    // Ceph's default: one replica per host, so OSDs sharing one host give one copy.
    let (rule, acting) = single_host_acting_sets("host", 4);
    assert_eq!(rule.name, "replicated_rule");
    assert!(
        rule.steps
            .contains(&crush::Step::ChooseLeafFirstN { n: 0, type_id: 1 }),
        "{rule:?}"
    );
    assert!(acting.iter().all(|set| set.len() == 1), "{acting:?}");

    // failure_domain = "osd" (the local launcher's): three distinct OSDs of the one host,
    // with the rule Ceph builds for that type (`choose firstn 0 type osd`).
    let (rule, acting) = single_host_acting_sets("osd", 4);
    assert_eq!((rule.id, rule.name.as_str()), (0, "replicated_rule"));
    assert!(
        rule.steps
            .contains(&crush::Step::ChooseFirstN { n: 0, type_id: 0 }),
        "{rule:?}"
    );
    for set in &acting {
        let distinct: std::collections::BTreeSet<_> = set.iter().collect();
        assert_eq!((set.len(), distinct.len()), (3, 3), "{acting:?}");
    }
    // Every OSD gets some primaries: the rule spreads over all of them.
    let primaries: std::collections::BTreeSet<i32> = acting.iter().map(|set| set[0]).collect();
    assert_eq!(primaries.len(), 4, "{acting:?}");
}

#[test]
fn an_unknown_failure_domain_is_refused_before_the_cluster_is_created() {
    let (machine, _) = machine_with_failure_domain("shelf");
    let duties = machine.leader_duties();
    let error = machine.validate(&duties[0]).unwrap_err();
    assert_eq!(argument_of(&error), "failure_domain", "{error}");
    assert!(error.to_string().contains("shelf"), "{error}");
}
