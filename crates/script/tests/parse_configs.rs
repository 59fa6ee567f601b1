//! Whole configs through the parse front end: the stock Kamailio 5.6 `kamailio.cfg` with its
//! feature defines, the seed examples, includes, a table of bad configs with the exact
//! position and message of their one error, and property tests that no input makes the
//! parser panic.
//!
//! Bad configs live in `tests/data/cfg/bad/`; the parse-level ones are named `parse_*.cfg`
//! and each must be listed in [`BAD_CONFIGS`]. Compile-step bad configs (unknown function...)
//! use other names and are checked elsewhere.

// Test code: a panic is a failed assertion.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use sable_script::ast::{Config, ExprKind, Item, Literal, ParamValue, RouteKind, StmtKind};
use sable_script::{parse_file, parse_str, Defines, ErrorKind, ScriptError};

const STOCK_CFG: &str = "/etc/kamailio/kamailio.cfg";

/// The feature defines of the stock config that must each parse, alone and together.
const WITH_DEFINES: &[&str] = &[
    "WITH_MYSQL",
    "WITH_AUTH",
    "WITH_USRLOCDB",
    "WITH_NAT",
    "WITH_TLS",
    "WITH_JSONRPC",
    "WITH_PRESENCE",
    "WITH_PSTN",
    "WITH_VOICEMAIL",
    "WITH_ANTIFLOOD",
    "WITH_DEBUG",
    "WITH_ACCDB",
    "WITH_BLOCK3XX",
    "WITH_IPAUTH",
];

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/cfg")
}

fn defines(names: &[&str]) -> Defines {
    let mut d = Defines::with_predefined();
    for n in names {
        d.define(n, None);
    }
    d
}

fn parse_ok(path: &Path, d: &Defines) -> Config {
    match parse_file(path, d) {
        Ok(c) => c,
        Err(errors) => {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!("{} does not parse:\n{}", path.display(), text.join("\n"))
        }
    }
}

/// The stock config, or `None` (with a note) where Kamailio is not installed.
fn stock() -> Option<PathBuf> {
    let p = PathBuf::from(STOCK_CFG);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("note: {STOCK_CFG} not found (package kamailio not installed): test skipped");
        None
    }
}

fn route_names(c: &Config, wanted: RouteKind) -> Vec<Option<String>> {
    c.items
        .iter()
        .filter_map(|i| match i {
            Item::Route { kind, name, .. } if *kind == wanted => Some(name.clone()),
            _ => None,
        })
        .collect()
}

fn param<'a>(c: &'a Config, wanted: &str) -> Option<&'a ParamValue> {
    c.items.iter().find_map(|i| match i {
        Item::Param { name, value, .. } if name == wanted => Some(value),
        _ => None,
    })
}

fn modparam<'a>(c: &'a Config, m: &str, p: &str) -> Option<&'a Literal> {
    c.items.iter().find_map(|i| match i {
        Item::ModParam {
            module,
            param,
            value,
            ..
        } if module == m && param == p => Some(value),
        _ => None,
    })
}

fn loadmodules(c: &Config) -> Vec<&str> {
    c.items
        .iter()
        .filter_map(|i| match i {
            Item::LoadModule { path, .. } => Some(path.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn stock_config_parses_without_defines() {
    let Some(path) = stock() else { return };
    let c = parse_ok(&path, &defines(&[]));
    assert_eq!(c.files, vec![STOCK_CFG.to_string()]);

    assert_eq!(route_names(&c, RouteKind::Request).first(), Some(&None));
    let named: Vec<String> = route_names(&c, RouteKind::Request)
        .into_iter()
        .flatten()
        .collect();
    for name in [
        "RELAY",
        "REQINIT",
        "WITHINDLG",
        "REGISTRAR",
        "LOCATION",
        "PRESENCE",
        "AUTH",
        "NATDETECT",
        "NATMANAGE",
        "DLGURI",
        "SIPOUT",
        "PSTN",
        "TOVOICEMAIL",
    ] {
        assert!(named.iter().any(|n| n == name), "route[{name}] missing");
    }
    assert_eq!(
        route_names(&c, RouteKind::Branch),
        vec![Some("MANAGE_BRANCH".into())]
    );
    assert_eq!(
        route_names(&c, RouteKind::Reply),
        vec![Some("MANAGE_REPLY".into())]
    );
    assert_eq!(
        route_names(&c, RouteKind::Failure),
        vec![Some("MANAGE_FAILURE".into())]
    );
    assert_eq!(route_names(&c, RouteKind::CoreReply), vec![None]);
    assert!(route_names(&c, RouteKind::Event).is_empty());

    let modules = loadmodules(&c);
    assert!(modules.len() > 10, "{modules:?}");
    assert!(modules.contains(&"tm.so") && modules.contains(&"sl.so"));
    assert!(!modules.contains(&"db_mysql.so"));

    assert_eq!(param(&c, "debug"), Some(&ParamValue::Int(2)));
    assert_eq!(param(&c, "log_stderror"), Some(&ParamValue::Bool(false)));
    assert_eq!(
        param(&c, "log_facility"),
        Some(&ParamValue::Raw("LOG_LOCAL0".into()))
    );
    assert_eq!(
        param(&c, "log_prefix"),
        Some(&ParamValue::Str("{$mt $hdr(CSeq) $ci} ".into()))
    );
    assert_eq!(param(&c, "children"), Some(&ParamValue::Int(8)));
    // Defines expand in modparam values; adjacent strings are joined.
    assert_eq!(modparam(&c, "acc", "log_flag"), Some(&Literal::Int(1)));
    assert_eq!(modparam(&c, "usrloc", "use_domain"), Some(&Literal::Int(0)));
    assert_eq!(
        modparam(&c, "acc", "log_extra"),
        Some(&Literal::Str(
            "src_user=$fU;src_domain=$fd;src_ip=$si;dst_ouser=$tU;dst_user=$rU;dst_domain=$rd"
                .into()
        ))
    );
}

#[test]
fn stock_config_parses_with_each_feature_define() {
    let Some(path) = stock() else { return };
    for name in WITH_DEFINES {
        let c = parse_ok(&path, &defines(&[name]));
        let expected_debug = if *name == "WITH_DEBUG" { 3 } else { 2 };
        assert_eq!(
            param(&c, "debug"),
            Some(&ParamValue::Int(expected_debug)),
            "{name}"
        );
    }
}

#[test]
fn stock_config_parses_with_all_feature_defines() {
    let Some(path) = stock() else { return };
    let c = parse_ok(&path, &defines(WITH_DEFINES));
    assert_eq!(param(&c, "debug"), Some(&ParamValue::Int(3)));
    assert_eq!(param(&c, "enable_tls"), Some(&ParamValue::Bool(true)));
    assert_eq!(
        route_names(&c, RouteKind::Event),
        vec![Some("xhttp:request".into())]
    );
    let modules = loadmodules(&c);
    for m in [
        "db_mysql.so",
        "auth_db.so",
        "permissions.so",
        "nathelper.so",
        "rtpproxy.so",
    ] {
        assert!(modules.contains(&m), "{m} not loaded: {modules:?}");
    }
    assert_eq!(
        modparam(&c, "acc", "db_url"),
        Some(&Literal::Str(
            "mysql://kamailio:kamailiorw@localhost/kamailio".into()
        ))
    );
    assert_eq!(
        modparam(&c, "nathelper|registrar", "received_avp"),
        Some(&Literal::Str("$avp(RECEIVED)".into()))
    );
    let cfg_vars: Vec<(String, String, Option<String>)> = c
        .items
        .iter()
        .filter_map(|i| match i {
            Item::CfgVar {
                group, name, desc, ..
            } => Some((group.clone(), name.clone(), desc.clone())),
            _ => None,
        })
        .collect();
    assert!(cfg_vars.contains(&(
        "pstn".into(),
        "gw_ip".into(),
        Some("PSTN GW Address".into())
    )));
    assert!(cfg_vars.contains(&(
        "voicemail".into(),
        "srv_port".into(),
        Some("VoiceMail Port".into())
    )));
}

#[test]
fn stock_config_statements_have_the_expected_shape() {
    let Some(path) = stock() else { return };
    let c = parse_ok(&path, &defines(&[]));
    let Some(Item::Route { body, .. }) = c.items.iter().find(|i| {
        matches!(i, Item::Route { kind: RouteKind::Request, name: Some(n), .. } if n == "LOCATION")
    }) else {
        panic!("no route[LOCATION]")
    };
    // `$avp(oexten) = $rU;` then `if (!lookup("location")) { ... switch ($var(rc)) ... }`.
    assert!(matches!(&body.stmts[0].kind, StmtKind::Assign { target, .. } if target.name == "avp"));
    let StmtKind::If { then, .. } = &body.stmts[1].kind else {
        panic!("{:?}", body.stmts[1])
    };
    assert!(then
        .stmts
        .iter()
        .any(|s| matches!(&s.kind, StmtKind::Switch { cases, .. } if cases.len() == 3)));
    // The last statement is `exit;` after `route(RELAY);`.
    let n = body.stmts.len();
    assert!(matches!(body.stmts[n - 1].kind, StmtKind::Exit(None)));
    let StmtKind::Expr(call) = &body.stmts[n - 2].kind else {
        panic!()
    };
    assert!(
        matches!(&call.kind, ExprKind::Call { name, args } if name == "route"
        && matches!(&args[0].kind, ExprKind::Ident(r) if r == "RELAY"))
    );
}

#[test]
fn stateless_proof_example_parses() {
    let c = parse_ok(&data_dir().join("stateless_proof.cfg"), &defines(&[]));
    assert_eq!(
        param(&c, "listen"),
        Some(&ParamValue::Raw("udp:127.0.0.1:5060".into()))
    );
    assert_eq!(
        loadmodules(&c),
        vec!["sl.so", "rr.so", "textops.so", "pv.so", "xlog.so"]
    );
    assert_eq!(route_names(&c, RouteKind::Request), vec![None]);
    assert_eq!(route_names(&c, RouteKind::CoreReply), vec![None]);
    let Some(Item::Route { body, .. }) = c.items.iter().find(|i| matches!(i, Item::Route { .. }))
    else {
        panic!()
    };
    let StmtKind::Expr(fwd) = &body.stmts.last().unwrap().kind else {
        panic!()
    };
    let ExprKind::Call { name, args } = &fwd.kind else {
        panic!()
    };
    assert_eq!(name, "forward");
    assert!(matches!(&args[0].kind, ExprKind::Str(s) if s == "127.0.0.1"));
    assert!(matches!(args[1].kind, ExprKind::Int(5090)));
    // The xlog format keeps its escapes processed and its pseudo-variables as text.
    let xlog = body.stmts.iter().find_map(|s| match &s.kind {
        StmtKind::Expr(e) => match &e.kind {
            ExprKind::Call { name, args } if name == "xlog" => Some(args),
            _ => None,
        },
        _ => None,
    });
    assert!(matches!(&xlog.unwrap()[0].kind, ExprKind::Str(s)
        if s == "for $rm the value of AVP \"state_test_var\" is $avp(state_test_var) "));
}

#[test]
fn seed_examples_parse() {
    let files = [
        ("seed004_reply_route.cfg", 3),
        ("seed004_failure_route.cfg", 4),
        ("seed004_parallel_forking.cfg", 4),
        ("seed004_serial_forking.cfg", 4),
        ("seed004_transaction_stateful.cfg", 3),
        ("seed_module_examples.cfg", 3),
    ];
    for (file, routes) in files {
        let c = parse_ok(&data_dir().join(file), &defines(&[]));
        let n = c
            .items
            .iter()
            .filter(|i| matches!(i, Item::Route { .. }))
            .count();
        assert_eq!(n, routes, "{file}");
    }
    let c = parse_ok(&data_dir().join("seed_module_examples.cfg"), &defines(&[]));
    assert_eq!(
        route_names(&c, RouteKind::Event),
        vec![Some("peerstate:state_changed".into())]
    );
    assert_eq!(route_names(&c, RouteKind::OnSend), vec![None]);
    assert_eq!(
        modparam(&c, "peerstate", "caller_avp"),
        Some(&Literal::Str("$avp(caller_peer)".into()))
    );
}

/// An expression as compact text (for assertions on the shape of a tree).
fn show(e: &sable_script::ast::Expr) -> String {
    match &e.kind {
        ExprKind::Int(n) => n.to_string(),
        ExprKind::Str(s) => format!("{s:?}"),
        ExprKind::Pv(p) => format!("${}", p.name),
        ExprKind::Ident(i) => i.clone(),
        ExprKind::Call { name, args } => format!(
            "{name}({})",
            args.iter().map(show).collect::<Vec<_>>().join(", ")
        ),
        ExprKind::Unary { op, expr } => format!("{op:?}({})", show(expr)),
        ExprKind::Binary { op, left, right } => {
            format!("({} {op:?} {})", show(left), show(right))
        }
    }
}

#[test]
fn real_world_constructs_parse() {
    let c = parse_ok(&data_dir().join("real_world_constructs.cfg"), &defines(&[]));
    let params: Vec<(&str, &ParamValue)> = c
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Param { name, value, .. } => Some((name.as_str(), value)),
            _ => None,
        })
        .collect();
    assert_eq!(
        params[..4],
        [
            ("listen", &ParamValue::Raw("udp:127.0.0.1:5060".into())),
            (
                "listen",
                &ParamValue::Raw("tcp:127.0.0.1:5060 advertise 127.0.0.2:5060".into())
            ),
            ("server_header", &ParamValue::Str("Server: Sable".into())),
            (
                "user_agent_header",
                &ParamValue::Str("User-Agent: Sable".into())
            ),
        ]
    );
    assert_eq!(param(&c, "children"), Some(&ParamValue::Int(2)));
    assert_eq!(param(&c, "tcp_async"), Some(&ParamValue::Bool(true)));
    assert_eq!(param(&c, "rev_dns"), Some(&ParamValue::Bool(false)));
    assert_eq!(
        modparam(&c, "htable", "htable"),
        Some(&Literal::Str("ipban=>size=8;autoexpire=300;".into()))
    );
    let Some(Item::Route { body, .. }) = c.items.iter().find(|i| {
        matches!(
            i,
            Item::Route {
                kind: RouteKind::Request,
                ..
            }
        )
    }) else {
        panic!("no request_route")
    };
    let conds: Vec<String> = body
        .stmts
        .iter()
        .filter_map(|s| match &s.kind {
            StmtKind::If { cond, .. } => Some(show(cond)),
            _ => None,
        })
        .collect();
    assert!(conds.contains(
        &"(((src_ip Eq 10.0.0.0/8) Or (src_ip Eq 192.168.0.0/16)) Or (src_ip Eq [::1]))".into()
    ));
    assert!(conds.contains(&"(((af Eq INET6) And (proto Eq TCP)) And (dst_port Eq 5060))".into()));
    // The substdef'd name is replaced both as a word (a number) and inside strings.
    let dst = body.stmts.iter().find_map(|s| match &s.kind {
        StmtKind::Assign { target, value } if target.name == "avp" => Some(show(value)),
        _ => None,
    });
    assert_eq!(
        dst.as_deref(),
        Some("(((((\"sip:\" Add $rU) Add \"@\") Add \"127.0.0.1\") Add \":\") Add 5060)")
    );
    let labels = body.stmts.iter().find_map(|s| match &s.kind {
        StmtKind::Switch { cases, .. } => Some(cases.iter().map(|c| c.label.clone()).collect()),
        _ => None,
    });
    assert_eq!(
        labels,
        Some(vec![
            Some(sable_script::ast::CaseLabel::Str("INVITE".into())),
            Some(sable_script::ast::CaseLabel::Str("OPTIONS".into())),
            None
        ])
    );
    assert!(matches!(
        body.stmts.last().unwrap().kind,
        StmtKind::Return(Some(sable_script::ast::Expr {
            kind: ExprKind::Int(-1),
            ..
        }))
    ));
    assert_eq!(
        route_names(&c, RouteKind::Event),
        vec![
            Some("tm:local-request".into()),
            Some("dispatcher:dst-down".into()),
            Some("xhttp:request".into())
        ]
    );
}

#[test]
fn includes_are_read_in_place_with_their_own_file_index() {
    let main = data_dir().join("include_main.cfg");
    let c = parse_ok(&main, &defines(&[]));
    assert_eq!(c.files.len(), 3, "{:?}", c.files);
    assert!(c.files[1].ends_with("inc/include_routes.cfg"));
    assert!(c.files[2].ends_with("inc/include_checks.cfg"));
    let Item::Route {
        name, body, pos, ..
    } = &c.items[0]
    else {
        panic!("{:?}", c.items[0])
    };
    assert_eq!(name.as_deref(), Some("TO_RELAY"));
    assert_eq!((pos.file, pos.line, pos.col), (1, 2, 1));
    // The define made in the main file expands in the included one.
    assert!(matches!(&body.stmts[0].kind, StmtKind::Assign { value, .. }
        if matches!(&value.kind, ExprKind::Str(s) if s == "sip:127.0.0.1:5090")));
    // include_file inside a route block inserts statements there.
    let Item::Route { body, .. } = &c.items[1] else {
        panic!()
    };
    assert_eq!(body.stmts.len(), 2);
    assert_eq!(body.stmts[1].pos.file, 2);
    assert_eq!(
        c.locate(body.stmts[1].pos).to_string(),
        format!("{}:2:2", c.files[2])
    );
}

#[test]
fn parse_str_resolves_includes_next_to_its_file_name() {
    let name = data_dir().join("virtual.cfg");
    let text = "#!define RELAY_DST \"x\"\ninclude_file \"inc/include_routes.cfg\"\n";
    let c = parse_str(&name.display().to_string(), text, &defines(&[])).unwrap();
    assert_eq!(c.files.len(), 2);
    assert!(matches!(&c.items[0], Item::Route { name: Some(n), .. } if n == "TO_RELAY"));
}

/// (file, file the error is reported in, line, column, part of the message).
const BAD_CONFIGS: &[(&str, &str, u32, u32, &str)] = &[
    (
        "parse_unbalanced_brace.cfg",
        "parse_unbalanced_brace.cfg",
        6,
        14,
        "unbalanced braces",
    ),
    (
        "parse_unclosed_block_before_route.cfg",
        "parse_unclosed_block_before_route.cfg",
        2,
        15,
        "unbalanced braces",
    ),
    (
        "parse_stray_brace.cfg",
        "parse_stray_brace.cfg",
        4,
        1,
        "unbalanced braces",
    ),
    (
        "parse_unterminated_string.cfg",
        "parse_unterminated_string.cfg",
        3,
        23,
        "unterminated string",
    ),
    (
        "parse_unterminated_comment.cfg",
        "parse_unterminated_comment.cfg",
        2,
        1,
        "unterminated comment",
    ),
    (
        "parse_unclosed_ifdef.cfg",
        "parse_unclosed_ifdef.cfg",
        2,
        1,
        "#!ifdef without #!endif",
    ),
    (
        "parse_else_without_ifdef.cfg",
        "parse_else_without_ifdef.cfg",
        2,
        1,
        "#!else without #!ifdef",
    ),
    (
        "parse_endif_without_ifdef.cfg",
        "parse_endif_without_ifdef.cfg",
        4,
        3,
        "#!endif without #!ifdef",
    ),
    (
        "parse_define_loop.cfg",
        "parse_define_loop.cfg",
        5,
        12,
        "define 'A' expands to itself",
    ),
    (
        "parse_missing_include.cfg",
        "parse_missing_include.cfg",
        2,
        1,
        "included file 'surely-missing-sable-file.cfg' not found",
    ),
    (
        "parse_recursive_include.cfg",
        "inc/recursive_b.cfg",
        3,
        1,
        "includes itself",
    ),
    (
        "parse_bad_pv.cfg",
        "parse_bad_pv.cfg",
        2,
        14,
        "bad pseudo-variable '$(;'",
    ),
    (
        "parse_bad_transformation.cfg",
        "parse_bad_transformation.cfg",
        2,
        19,
        "bad transformation '{uri.user)'",
    ),
    (
        "parse_missing_semicolon.cfg",
        "parse_missing_semicolon.cfg",
        3,
        29,
        "missing ';'",
    ),
    (
        "parse_unexpected_token.cfg",
        "parse_unexpected_token.cfg",
        3,
        27,
        "unexpected ']', expected a statement",
    ),
    (
        "parse_bad_number.cfg",
        "parse_bad_number.cfg",
        2,
        12,
        "bad number '0x1G'",
    ),
    (
        "parse_unknown_char.cfg",
        "parse_unknown_char.cfg",
        2,
        6,
        "unexpected character '@'",
    ),
    (
        "parse_bad_subst.cfg",
        "parse_bad_subst.cfg",
        1,
        1,
        "bad substitution rule '/foo/bar'",
    ),
    (
        "parse_bad_subst_regex.cfg",
        "parse_bad_subst_regex.cfg",
        1,
        1,
        "bad regular expression 'fo(o'",
    ),
    (
        "parse_route_name_unclosed.cfg",
        "parse_route_name_unclosed.cfg",
        5,
        13,
        "unexpected '{', expected ']'",
    ),
    (
        "parse_else_without_if.cfg",
        "parse_else_without_if.cfg",
        5,
        2,
        "unexpected 'else'",
    ),
    (
        "parse_missing_operand.cfg",
        "parse_missing_operand.cfg",
        2,
        22,
        "unexpected ';', expected an expression",
    ),
    (
        "parse_duplicate_route.cfg",
        "parse_duplicate_route.cfg",
        9,
        7,
        "duplicate route 'RELAY'",
    ),
    (
        "parse_nesting_too_deep.cfg",
        "parse_nesting_too_deep.cfg",
        2,
        257,
        "nesting too deep",
    ),
    (
        "parse_already_defined.cfg",
        "parse_already_defined.cfg",
        2,
        1,
        "'DBURL' is already defined",
    ),
    (
        "parse_bad_event_route_name.cfg",
        "parse_bad_event_route_name.cfg",
        5,
        13,
        "bad route name 'xhttp'",
    ),
    (
        "parse_case_outside_switch.cfg",
        "parse_case_outside_switch.cfg",
        2,
        2,
        "unexpected 'case'",
    ),
    (
        "parse_statement_outside_route.cfg",
        "parse_statement_outside_route.cfg",
        2,
        14,
        "unexpected '(', expected '='",
    ),
    (
        "parse_unclosed_call.cfg",
        "parse_unclosed_call.cfg",
        2,
        27,
        "expected ',' or ')'",
    ),
    (
        "parse_unsupported_directive.cfg",
        "parse_unsupported_directive.cfg",
        1,
        1,
        "#!ifexp is not supported",
    ),
];

fn the_error(path: &Path) -> ScriptError {
    match parse_file(path, &defines(&[])) {
        Ok(c) => panic!("{} parsed: {:?}", path.display(), c.items),
        Err(mut errors) => {
            assert_eq!(errors.len(), 1, "{}: {errors:?}", path.display());
            errors.remove(0)
        }
    }
}

#[test]
fn bad_configs_give_one_error_at_the_fault() {
    let dir = data_dir().join("bad");
    for (file, reported_in, line, col, message) in BAD_CONFIGS {
        let e = the_error(&dir.join(file));
        let shown = e.to_string();
        assert!(
            e.file.ends_with(reported_in),
            "{file}: reported in {} instead of {reported_in}",
            e.file
        );
        assert_eq!(
            (e.pos.line, e.pos.col),
            (*line, *col),
            "{file}: wrong position in\n{shown}"
        );
        assert!(shown.contains(message), "{file}: {shown}");
        assert!(
            shown.starts_with(&format!("{}:{line}:{col}: ", e.file)),
            "{file}: {shown}"
        );
    }
}

#[test]
fn every_parse_level_bad_config_is_in_the_table() {
    let dir = data_dir().join("bad");
    let mut found = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("parse_") && name.ends_with(".cfg") {
            assert!(
                BAD_CONFIGS.iter().any(|(f, ..)| *f == name),
                "{name} has no entry in BAD_CONFIGS"
            );
            found += 1;
        }
    }
    assert_eq!(found, BAD_CONFIGS.len());
    assert!(found >= 20);
}

#[test]
fn bad_config_errors_carry_hints_for_common_mistakes() {
    let dir = data_dir().join("bad");
    let hint = |file: &str| the_error(&dir.join(file)).hint.unwrap_or_default();
    assert!(hint("parse_unknown_char.cfg").contains("select syntax (@...) is not supported"));
    assert!(hint("parse_unbalanced_brace.cfg").contains("the block opened at 6:14 is not closed"));
    assert!(hint("parse_unclosed_block_before_route.cfg").contains("before 'route' at 8:1"));
    assert!(hint("parse_missing_semicolon.cfg").contains("';'"));
    assert!(hint("parse_recursive_include.cfg").contains("cycle"));
    assert!(hint("parse_define_loop.cfg").contains("A -> B -> C -> A"));
    assert!(hint("parse_duplicate_route.cfg").contains(":5:7"));
    let e = the_error(&dir.join("parse_unterminated_string.cfg"));
    assert_eq!(e.kind, ErrorKind::UnterminatedString);
}

/// Pieces of config text, to build random but config-like inputs.
const SOUP: &[&str] = &[
    "request_route",
    "route",
    "failure_route",
    "onreply_route",
    "event_route",
    "[",
    "]",
    "{",
    "}",
    "(",
    ")",
    ";",
    ",",
    ":",
    ".",
    "=",
    ":=",
    "==",
    "!=",
    "=~",
    "+",
    "-",
    "*",
    "/",
    "!",
    "&&",
    "||",
    "if",
    "else",
    "switch",
    "case",
    "default",
    "while",
    "return",
    "exit",
    "drop",
    "break",
    "myself",
    "t_relay",
    "xlog",
    "$var(x)",
    "$(avp(a)[*])",
    "$(ru{uri.user})",
    "$",
    "$(",
    "{s.substr,0,1}",
    "\"str\"",
    "\"",
    "'",
    "1",
    "0x1F",
    "12abc",
    "10.0.0.0/8",
    "[::1]",
    "\n",
    " ",
    "#!define X 1\n",
    "#!ifdef X\n",
    "#!ifndef Y\n",
    "#!else\n",
    "#!endif\n",
    "#!subst \"/a/b/g\"\n",
    "X",
    "/*",
    "*/",
    "# c\n",
    "// c\n",
    "loadmodule \"tm.so\"\n",
    "modparam(\"tm\", \"a\", 1)\n",
    "debug=2\n",
    "listen=udp:127.0.0.1:5060\n",
    "include_file \"nonexistent.cfg\"\n",
    "import_file \"nonexistent.cfg\"\n",
    "@",
    "\\",
    "#!define A A\n",
    "#!substdef \"/Z/z/\"\n",
];

fn parse_never_panics(text: &str) {
    let result = parse_str("prop.cfg", text, &Defines::with_predefined());
    if let Err(errors) = result {
        assert_eq!(errors.len(), 1);
        // The message and position are always printable.
        let _ = errors[0].to_string();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        parse_never_panics(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_token_soup_never_panics(
        pieces in proptest::collection::vec(proptest::sample::select(SOUP), 0..120)
    ) {
        let mut text = String::new();
        for p in pieces {
            text.push_str(p);
            text.push(' ');
        }
        parse_never_panics(&text);
    }

    #[test]
    fn soup_inside_a_route_never_panics(
        pieces in proptest::collection::vec(proptest::sample::select(SOUP), 0..80)
    ) {
        let body: Vec<&str> = pieces;
        parse_never_panics(&format!("request_route {{\n{}\n}}\n", body.join("")));
    }
}
