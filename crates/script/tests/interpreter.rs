//! The language end to end: config text in, behaviour out. A small test host registers a few
//! functions and pseudo-variables; each test parses a config with [`parse_str`], compiles it
//! with [`compile`] and runs it with [`Program::run`], then looks at the context (a log of
//! what the script printed, the variables) and at the [`RunResult`].
//!
//! The rules checked are those of `shared/reference/kamailio-modules.md` section 2 (return
//! values, `exit`/`drop`/`return 0`, `$rc`, `$avp` stacks, `$xavp`, `$var` per worker,
//! preprocessor) plus the compile step's checks (names, argument counts, fixups, route types).

// Test code: a panic is a failed assertion.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::HashMap;

use sable_script::ast::RouteKind;
use sable_script::{
    compile, parse_str, Action, ArgError, AvpStore, CompileOptions, Defines, ErrorKind,
    FunctionDef, Host, Program, PvAccess, PvDef, Registry, RouteMask, RunResult, ScriptError,
    ScriptState, Value, XavpStore,
};

// ---------------------------------------------------------------------------------------------
// The test host
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct TestHost;

/// The per-message context: borrows a "message" (to exercise the context's lifetime).
#[derive(Debug, Default)]
struct TestCtx<'a> {
    msg: &'a str,
    vars: Vec<Value>,
    avps: AvpStore,
    xavps: XavpStore,
    retcode: i32,
    /// What `log()` printed, in order.
    log: Vec<String>,
    /// How many times `count()` ran.
    counter: i64,
    /// Storage of the writable `$x(name)`.
    x: HashMap<String, Value>,
}

impl<'a> TestCtx<'a> {
    fn new(msg: &'a str) -> Self {
        TestCtx {
            msg,
            ..TestCtx::default()
        }
    }
}

impl Host for TestHost {
    type Ctx<'a> = TestCtx<'a>;
}

impl ScriptState for TestCtx<'_> {
    fn vars(&mut self) -> &mut Vec<Value> {
        &mut self.vars
    }
    fn avps(&mut self) -> &mut AvpStore {
        &mut self.avps
    }
    fn xavps(&mut self) -> &mut XavpStore {
        &mut self.xavps
    }
    fn retcode(&self) -> i32 {
        self.retcode
    }
    fn set_retcode(&mut self, code: i32) {
        self.retcode = code;
    }
}

/// `$msg`: the message text, read-only.
struct MsgPv;

impl PvAccess<TestHost> for MsgPv {
    fn get(&self, ctx: &mut TestCtx<'_>) -> Value {
        Value::from(ctx.msg)
    }
}

/// `$x(name)`: a writable host variable with an inner name.
struct XPv(String);

impl PvAccess<TestHost> for XPv {
    fn get(&self, ctx: &mut TestCtx<'_>) -> Value {
        ctx.x.get(&self.0).cloned().unwrap_or_default()
    }
    fn set(&self, ctx: &mut TestCtx<'_>, value: Value) -> bool {
        if value.is_null() {
            ctx.x.remove(&self.0);
        } else {
            ctx.x.insert(self.0.clone(), value);
        }
        true
    }
}

fn action(
    f: impl for<'a, 'b> Fn(&'b mut TestCtx<'a>) -> i32 + Send + Sync + 'static,
) -> Action<TestHost> {
    Box::new(f)
}

/// The test registry:
/// - `log(fmt)`: appends the rendered text to the log, returns 1;
/// - `ret(n)`: returns n (logs `ret(n)` so that tests see whether it ran);
/// - `count()`: increments the counter, returns 1;
/// - `req_only()`: allowed only in request_route, returns 1;
/// - `pick(word)`: the fixup accepts only `a` or `b`; returns 1 for `a`, 2 for `b`;
/// - `two(a[, b])`: takes one or two arguments, returns 1;
/// - `needs_tm()`: belongs to module `tm` (not loaded unless the options say so).
fn registry() -> Registry<TestHost> {
    let mut r = Registry::<TestHost>::new();
    r.function(
        "log",
        FunctionDef {
            module: "core",
            min_args: 1,
            max_args: 1,
            routes: RouteMask::ANY,
            fixup: Box::new(|_fx, args| {
                let fmt = args.into_iter().next().unwrap().into_str();
                Ok(action(move |ctx| {
                    let s = fmt.eval(ctx).into_owned();
                    ctx.log.push(s);
                    1
                }))
            }),
        },
    );
    r.function(
        "ret",
        FunctionDef {
            module: "core",
            min_args: 1,
            max_args: 1,
            routes: RouteMask::ANY,
            fixup: Box::new(|_fx, args| {
                let n = args.into_iter().next().unwrap().into_int(1)?;
                Ok(action(move |ctx| {
                    let v = n.eval(ctx).unwrap_or(-1);
                    ctx.log.push(format!("ret({v})"));
                    i32::try_from(v).unwrap()
                }))
            }),
        },
    );
    r.function(
        "count",
        FunctionDef {
            module: "core",
            min_args: 0,
            max_args: 0,
            routes: RouteMask::ANY,
            fixup: Box::new(|_fx, _args| {
                Ok(action(|ctx| {
                    ctx.counter += 1;
                    1
                }))
            }),
        },
    );
    r.function(
        "req_only",
        FunctionDef {
            module: "core",
            min_args: 0,
            max_args: 0,
            routes: RouteMask::REQUEST,
            fixup: Box::new(|_fx, _args| Ok(action(|_| 1))),
        },
    );
    r.function(
        "pick",
        FunctionDef {
            module: "core",
            min_args: 1,
            max_args: 1,
            routes: RouteMask::ANY,
            fixup: Box::new(|_fx, args| {
                let word = args[0].const_str().map(|s| s.into_owned());
                match word.as_deref() {
                    Some("a") => Ok(action(|_| 1)),
                    Some("b") => Ok(action(|_| 2)),
                    other => Err(ArgError::new(
                        1,
                        format!("expected 'a' or 'b', got {other:?}"),
                    )),
                }
            }),
        },
    );
    r.function(
        "two",
        FunctionDef {
            module: "core",
            min_args: 1,
            max_args: 2,
            routes: RouteMask::ANY,
            fixup: Box::new(|_fx, _args| Ok(action(|_| 1))),
        },
    );
    r.function(
        "needs_tm",
        FunctionDef {
            module: "tm",
            min_args: 0,
            max_args: 0,
            routes: RouteMask::ANY,
            fixup: Box::new(|_fx, _args| Ok(action(|_| 1))),
        },
    );
    r.pv(
        "msg",
        PvDef {
            module: "core",
            writable: false,
            make: Box::new(|inner| match inner {
                None => Ok(Box::new(MsgPv)),
                Some(_) => Err("$msg takes no name".to_owned()),
            }),
        },
    );
    r.pv(
        "x",
        PvDef {
            module: "core",
            writable: true,
            make: Box::new(|inner| match inner {
                Some(name) if !name.is_empty() => Ok(Box::new(XPv(name.to_owned()))),
                _ => Err("$x needs a name: $x(name)".to_owned()),
            }),
        },
    );
    r
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn try_build(text: &str, options: &CompileOptions) -> Result<Program<TestHost>, Vec<ScriptError>> {
    let config = match parse_str("t.cfg", text, &Defines::new()) {
        Ok(c) => c,
        Err(errors) => {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!("config does not parse:\n{}", text.join("\n"))
        }
    };
    compile(&config, &registry(), options)
}

fn build_with(text: &str, options: &CompileOptions) -> Program<TestHost> {
    match try_build(text, options) {
        Ok(p) => p,
        Err(errors) => {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!("config does not compile:\n{}", text.join("\n"))
        }
    }
}

fn build(text: &str) -> Program<TestHost> {
    build_with(text, &CompileOptions::default())
}

/// The compile errors of a config that parses but must not compile.
fn compile_errors(text: &str) -> Vec<ScriptError> {
    match try_build(text, &CompileOptions::default()) {
        Ok(_) => panic!("config compiled, expected errors:\n{text}"),
        Err(errors) => errors,
    }
}

/// Runs the request route on a fresh context for message `msg`.
fn run_on<'m>(program: &Program<TestHost>, msg: &'m str) -> (RunResult, TestCtx<'m>) {
    let mut ctx = TestCtx::new(msg);
    let r = program.run(program.request_route().unwrap(), &mut ctx);
    (r, ctx)
}

/// Runs the request route of `text` once; the result and the log.
fn run(text: &str) -> (RunResult, Vec<String>) {
    let program = build(text);
    let (r, ctx) = run_on(&program, "INVITE sip:a@b SIP/2.0");
    (r, ctx.log)
}

/// The log of one run of `request_route { body }`.
fn log_of(body: &str) -> Vec<String> {
    run(&format!("request_route {{\n{body}\n}}\n")).1
}

/// Asserts that the errors hold one of `kind` (matched by the predicate), and returns it.
fn find_error<'e>(
    errors: &'e [ScriptError],
    what: &str,
    pred: impl Fn(&ErrorKind) -> bool,
) -> &'e ScriptError {
    errors.iter().find(|e| pred(&e.kind)).unwrap_or_else(|| {
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("no {what} error among:\n{}", text.join("\n"))
    })
}

const OK: RunResult = RunResult {
    code: 1,
    dropped: false,
    exited: false,
};

// ---------------------------------------------------------------------------------------------
// Return values, exit, drop, $rc (reference 2.2)
// ---------------------------------------------------------------------------------------------

#[test]
fn negative_function_code_is_false_and_positive_is_true() {
    let log = log_of(
        r#"
        if (ret(-1)) { log("neg true"); } else { log("neg false"); }
        if (ret(1)) { log("pos true"); } else { log("pos false"); }
        if (ret(7)) { log("7 true"); } else { log("7 false"); }
        if (!ret(-2)) { log("not neg true"); }
        "#,
    );
    assert_eq!(
        log,
        [
            "ret(-1)",
            "neg false",
            "ret(1)",
            "pos true",
            "ret(7)",
            "7 true",
            "ret(-2)",
            "not neg true"
        ]
    );
}

#[test]
fn function_returning_zero_stops_the_whole_script() {
    let (r, log) = run(r#"
        request_route {
            log("before");
            route(SUB);
            log("after route");
        }
        route[SUB] {
            ret(0);
            log("after ret(0)");
        }
        "#);
    assert_eq!(log, ["before", "ret(0)"]);
    assert!(r.exited);
    assert!(!r.dropped);
    assert_eq!(r.code, 0);
}

#[test]
fn function_returning_zero_inside_a_condition_stops_the_script() {
    let (r, log) = run(r#"
        request_route {
            if (ret(0)) { log("then"); } else { log("else"); }
            log("after");
        }
        "#);
    assert_eq!(log, ["ret(0)"]);
    assert!(r.exited);
}

#[test]
fn route_running_to_its_end_returns_one() {
    let (r, log) = run(r#"request_route { log("x"); }"#);
    assert_eq!(log, ["x"]);
    assert_eq!(r, OK);
}

#[test]
fn route_ending_without_return_gives_its_last_call_code() {
    // Kamailio's run_actions: the value of a block is that of the last action it ran.
    let log = run(r#"
        request_route {
            route(R);
            $var(rc) = $rc;
            if (route(R)) { log("true"); } else { log("false rc=$var(rc)"); }
        }
        route[R] { ret(-3); }
        "#)
    .1;
    assert_eq!(log, ["ret(-3)", "ret(-3)", "false rc=-3"]);
}

#[test]
fn return_without_value_returns_one() {
    let log = run(r#"
        request_route {
            route(R);
            log("rc=$rc");
        }
        route[R] { return; }
        "#)
    .1;
    assert_eq!(log, ["rc=1"]);
}

#[test]
fn return_n_from_a_sub_route_returns_to_the_caller() {
    let (r, log) = run(r#"
        request_route {
            route(R);
            log("back rc=$rc");
            return 4;
        }
        route[R] {
            log("in R");
            return 2;
            log("not reached");
        }
        "#);
    assert_eq!(log, ["in R", "back rc=2"]);
    assert_eq!(
        r,
        RunResult {
            code: 4,
            dropped: false,
            exited: false
        }
    );
}

#[test]
fn return_zero_in_a_sub_route_stops_the_script() {
    let (r, log) = run(r#"
        request_route {
            route(R0);
            log("after route(R0)");
        }
        route[R0] { return 0; }
        "#);
    assert!(log.is_empty(), "{log:?}");
    assert!(r.exited);
    assert_eq!(r.code, 0);
}

#[test]
fn return_zero_in_a_sub_route_used_as_condition_stops_the_script() {
    let (r, log) = run(r#"
        request_route {
            if (route(R0)) { log("then"); } else { log("else"); }
            log("after");
        }
        route[R0] { return 0; }
        "#);
    assert!(log.is_empty(), "{log:?}");
    assert!(r.exited);
}

#[test]
fn exit_stops_the_whole_script_from_a_sub_route() {
    let (r, log) = run(r#"
        request_route {
            route(R);
            log("after");
        }
        route[R] {
            log("in R");
            exit;
            log("after exit");
        }
        "#);
    assert_eq!(log, ["in R"]);
    assert_eq!(
        r,
        RunResult {
            code: 1,
            dropped: false,
            exited: true
        }
    );
}

#[test]
fn exit_with_value_records_the_value() {
    let (r, log) = run(r#"
        request_route {
            exit(3);
            log("after");
        }
        "#);
    assert!(log.is_empty());
    assert_eq!(
        r,
        RunResult {
            code: 3,
            dropped: false,
            exited: true
        }
    );
}

#[test]
fn drop_stops_the_script_and_sets_dropped() {
    let (r, log) = run(r#"
        request_route {
            route(R);
            log("after");
        }
        route[R] {
            if (1) { drop; }
            log("after drop");
        }
        "#);
    assert!(log.is_empty());
    assert!(r.dropped);
    assert!(r.exited);
}

#[test]
fn rc_after_route_returning_minus_five() {
    let log = run(r#"
        request_route {
            route(R1);
            $var(saved) = $rc;
            log("rc=$rc retcode=$retcode");
            log("saved=$var(saved) rc now=$rc");
        }
        route[R1] { return -5; }
        "#)
    .1;
    // log() is a function too: after it ran, $rc is its code (1).
    assert_eq!(log, ["rc=-5 retcode=-5", "saved=-5 rc now=1"]);
}

#[test]
fn rc_after_a_function_call_is_its_code() {
    let log = log_of(
        r#"
        ret(-3);
        log("rc=$rc");
        pick("b");
        log("rc=$rc");
        "#,
    );
    assert_eq!(log, ["ret(-3)", "rc=-3", "rc=2"]);
}

#[test]
fn if_route_returning_three_takes_the_branch_and_sets_rc() {
    let log = run(r#"
        request_route {
            if (route(R2)) { log("taken rc=$rc"); } else { log("not taken"); }
            if (route(RN)) { log("taken"); } else { log("negative not taken rc=$rc"); }
        }
        route[R2] { return 3; }
        route[RN] { return -2; }
        "#)
    .1;
    assert_eq!(log, ["taken rc=3", "negative not taken rc=-2"]);
}

#[test]
fn assignment_keeps_the_raw_function_value() {
    let log = log_of(
        r#"
        $var(x) = ret(2);
        log("x=$var(x)");
        $var(y) = ret(-4);
        log("y=$var(y)");
        "#,
    );
    assert_eq!(log, ["ret(2)", "x=2", "ret(-4)", "y=-4"]);
}

#[test]
fn assignment_keeps_the_raw_route_value() {
    let log = run(r#"
        request_route {
            $var(x) = route(R);
            log("x=$var(x)");
        }
        route[R] { return 7; }
        "#)
    .1;
    assert_eq!(log, ["x=7"]);
}

#[test]
fn function_inside_a_larger_expression_is_one_or_zero() {
    let log = log_of(
        r#"
        $var(a) = ret(2) + 1;
        log("a=$var(a)");
        $var(b) = ret(-3) + 10;
        log("b=$var(b)");
        if (ret(5) > 1) { log("gt"); } else { log("not gt"); }
        "#,
    );
    assert_eq!(
        log,
        ["ret(2)", "a=2", "ret(-3)", "b=10", "ret(5)", "not gt"]
    );
}

// ---------------------------------------------------------------------------------------------
// Control flow
// ---------------------------------------------------------------------------------------------

#[test]
fn if_else_if_else_picks_one_branch() {
    let text = r#"
        request_route {
            if ($msg =~ "^INVITE") { log("invite"); }
            else if ($msg =~ "^BYE") { log("bye"); }
            else { log("other"); }
        }
    "#;
    let p = build(text);
    for (msg, want) in [
        ("INVITE sip:x", "invite"),
        ("BYE sip:x", "bye"),
        ("OPTIONS sip:x", "other"),
    ] {
        let (_, ctx) = run_on(&p, msg);
        assert_eq!(ctx.log, [want], "for {msg}");
    }
}

#[test]
fn switch_on_int_runs_matching_case_until_break() {
    let text = r#"
        request_route {
            switch ($var(n)) {
                case 1:
                    log("one");
                    break;
                case 2:
                    log("two");
                case 3:
                    log("three");
                    break;
                default:
                    log("default");
            }
            log("end");
        }
    "#;
    let p = build(text);
    let mut logs = Vec::new();
    for n in [1, 2, 3, 9] {
        let mut ctx = TestCtx::new("m");
        ctx.vars = vec![Value::Int(n)];
        p.run(p.request_route().unwrap(), &mut ctx);
        logs.push(ctx.log.join(","));
    }
    assert_eq!(
        logs,
        ["one,end", "two,three,end", "three,end", "default,end"]
    );
}

#[test]
fn switch_on_string_cases_and_default_falls_through() {
    let text = r#"
        request_route {
            $var(m) = $(msg{s.select,0, });
            switch ($var(m)) {
                case "INVITE":
                    log("invite");
                    break;
                default:
                    log("default");
                case "BYE":
                    log("bye");
            }
        }
    "#;
    let p = build(text);
    let (_, ctx) = run_on(&p, "INVITE sip:x");
    assert_eq!(ctx.log, ["invite"]);
    let (_, ctx) = run_on(&p, "BYE sip:x");
    assert_eq!(ctx.log, ["bye"]);
    // No case matches: the default runs, then falls through into the next case.
    let (_, ctx) = run_on(&p, "ACK sip:x");
    assert_eq!(ctx.log, ["default", "bye"]);
}

#[test]
fn switch_regex_case_matches_case_insensitively() {
    let text = r#"
        request_route {
            switch ($msg) {
                case /"^inv":
                    log("invite-ish");
                    break;
                case /"^(bye|cancel)":
                    log("ending");
                    break;
                default:
                    log("other");
            }
        }
    "#;
    let p = build(text);
    let (_, ctx) = run_on(&p, "INVITE sip:x");
    assert_eq!(ctx.log, ["invite-ish"]);
    let (_, ctx) = run_on(&p, "CANCEL sip:x");
    assert_eq!(ctx.log, ["ending"]);
    let (_, ctx) = run_on(&p, "ACK sip:x");
    assert_eq!(ctx.log, ["other"]);
}

#[test]
fn switch_without_matching_case_nor_default_runs_nothing() {
    let log = log_of(
        r#"
        $var(n) = 5;
        switch ($var(n)) {
            case 1: log("one");
            case 2: log("two");
        }
        log("end");
        "#,
    );
    assert_eq!(log, ["end"]);
}

#[test]
fn return_inside_switch_leaves_the_route() {
    let log = run(r#"
        request_route {
            route(S);
            log("rc=$rc");
        }
        route[S] {
            switch (2) {
                case 2:
                    return -7;
            }
            log("not reached");
        }
        "#)
    .1;
    assert_eq!(log, ["rc=-7"]);
}

#[test]
fn while_loop_counts_and_break_leaves_it() {
    let log = log_of(
        r#"
        $var(i) = 0;
        while ($var(i) < 5) {
            $var(i) = $var(i) + 1;
            count();
        }
        log("i=$var(i)");
        $var(j) = 0;
        while (1) {
            $var(j) = $var(j) + 1;
            if ($var(j) >= 3) { break; }
        }
        log("j=$var(j)");
        "#,
    );
    assert_eq!(log, ["i=5", "j=3"]);
}

#[test]
fn break_in_a_switch_inside_a_while_leaves_only_the_switch() {
    let log = log_of(
        r#"
        $var(i) = 0;
        while ($var(i) < 3) {
            $var(i) = $var(i) + 1;
            switch ($var(i)) {
                case 2:
                    log("two");
                    break;
                default:
                    log("other $var(i)");
            }
        }
        log("done $var(i)");
        "#,
    );
    assert_eq!(log, ["other 1", "two", "other 3", "done 3"]);
}

#[test]
fn max_while_loops_bounds_a_runaway_loop() {
    let text = r#"
        request_route {
            while (1) { count(); }
            log("after loop");
        }
    "#;
    let options = CompileOptions {
        max_while_loops: 10,
        ..CompileOptions::default()
    };
    let p = build_with(text, &options);
    let (r, ctx) = run_on(&p, "m");
    assert_eq!(ctx.counter, 10);
    assert_eq!(ctx.log, ["after loop"]);
    assert_eq!(r, OK);

    // The default bound is Kamailio's 100.
    let p = build(text);
    let (_, ctx) = run_on(&p, "m");
    assert_eq!(ctx.counter, 100);
}

#[test]
fn max_while_loops_zero_means_no_bound() {
    let text = r#"
        request_route {
            $var(i) = 0;
            while ($var(i) < 500) { $var(i) = $var(i) + 1; }
            log("i=$var(i)");
        }
    "#;
    let options = CompileOptions {
        max_while_loops: 0,
        ..CompileOptions::default()
    };
    let (_, ctx) = run_on(&build_with(text, &options), "m");
    assert_eq!(ctx.log, ["i=500"]);
    // With the default bound the same loop is cut at 100 rounds.
    let (_, ctx) = run_on(&build(text), "m");
    assert_eq!(ctx.log, ["i=100"]);
}

#[test]
fn route_recursion_is_bounded_and_stops_the_script() {
    let (r, log) = run(r#"
        request_route {
            route(LOOP);
            log("after");
        }
        route[LOOP] {
            count();
            route(LOOP);
            log("unwound");
        }
        "#);
    assert!(log.is_empty(), "{log:?}");
    assert!(r.exited);
    assert!(r.code < 0, "{r:?}");
}

#[test]
fn route_recursion_with_a_base_case_runs() {
    let log = run(r#"
        request_route {
            $var(n) = 0;
            route(DOWN);
            log("n=$var(n)");
        }
        route[DOWN] {
            $var(n) = $var(n) + 1;
            if ($var(n) < 20) { route(DOWN); }
        }
        "#)
    .1;
    assert_eq!(log, ["n=20"]);
}

// ---------------------------------------------------------------------------------------------
// Expressions
// ---------------------------------------------------------------------------------------------

#[test]
fn arithmetic_follows_precedence() {
    let log = log_of(
        r#"
        $var(a) = 2 + 3 * 4;
        $var(b) = (2 + 3) * 4;
        $var(c) = 17 / 5;
        $var(d) = 17 % 5;
        $var(e) = 10 - 2 - 3;
        $var(f) = -4 + 1;
        $var(g) = 6 | 1;
        $var(h) = 6 & 3;
        log("$var(a) $var(b) $var(c) $var(d) $var(e) $var(f) $var(g) $var(h)");
        "#,
    );
    assert_eq!(log, ["14 20 3 2 5 -3 7 2"]);
}

#[test]
fn division_by_zero_gives_zero() {
    let log = log_of(
        r#"
        $var(z) = 0;
        $var(a) = 5 / $var(z);
        log("a=$var(a)");
        "#,
    );
    assert_eq!(log, ["a=0"]);
}

#[test]
fn plus_concatenates_when_the_left_operand_is_a_string() {
    let log = log_of(
        r#"
        $var(s) = "ab" + "cd";
        $var(t) = "n=" + 5;
        $var(u) = 5 + "7";
        $var(v) = "5" + 7;
        log("$var(s)|$var(t)|$var(u)|$var(v)");
        "#,
    );
    assert_eq!(log, ["abcd|n=5|12|57"]);
}

#[test]
fn comparisons_of_int_and_string_take_the_left_operand_type() {
    let log = log_of(
        r#"
        if (10 == "10") { log("int eq str"); }
        if ("10" == 10) { log("str eq int"); }
        if ("010" == 10) { log("str 010 eq int"); } else { log("str 010 ne int"); }
        if (010 == "10") { log("int 010 eq str"); }
        if (9 < 10) { log("int lt"); }
        if ("9" < "10") { log("str lt"); } else { log("str not lt"); }
        if ("abc" != "abd") { log("ne"); }
        if ("b" > "a") { log("str gt"); }
        "#,
    );
    assert_eq!(
        log,
        [
            "int eq str",
            "str eq int",
            "str 010 ne int",
            "int 010 eq str",
            "int lt",
            "str not lt",
            "ne",
            "str gt"
        ]
    );
}

#[test]
fn and_or_short_circuit_does_not_call_the_right_side() {
    let text = r#"
        request_route {
            if (0 && count()) { log("and true"); }
            if (1 || count()) { log("or true"); }
            if (1 && count()) { log("and both"); }
            if (0 || count()) { log("or right"); }
        }
    "#;
    let p = build(text);
    let (_, ctx) = run_on(&p, "m");
    assert_eq!(ctx.log, ["or true", "and both", "or right"]);
    // Only the two calls that had to run did.
    assert_eq!(ctx.counter, 2);
}

#[test]
fn not_negates_truth() {
    let log = log_of(
        r#"
        if (!0) { log("!0"); }
        if (!1) { log("!1"); }
        if (!"") { log("!empty"); }
        if (!(1 == 2)) { log("!(1==2)"); }
        "#,
    );
    assert_eq!(log, ["!0", "!empty", "!(1==2)"]);
}

#[test]
fn regex_match_is_case_insensitive_and_not_match_negates() {
    let log = log_of(
        r#"
        $var(s) = "Hello World";
        if ($var(s) =~ "^hello") { log("match"); }
        if ($var(s) =~ "WORLD$") { log("match upper"); }
        if ($var(s) !~ "^bye") { log("no match"); }
        if ($var(s) !~ "hello") { log("wrong"); }
        $var(p) = "o w";
        if ($var(s) =~ $var(p)) { log("dynamic"); }
        "#,
    );
    assert_eq!(log, ["match", "match upper", "no match", "dynamic"]);
}

#[test]
fn bad_regex_literal_is_a_compile_error_with_position() {
    let errors =
        compile_errors("request_route {\n    if ($var(s) =~ \"(unclosed\") { exit; }\n}\n");
    let e = find_error(
        &errors,
        "BadRegex",
        |k| matches!(k, ErrorKind::BadRegex { pattern, .. } if pattern == "(unclosed"),
    );
    assert_eq!(e.file, "t.cfg");
    assert_eq!((e.pos.line, e.pos.col), (2, 20), "{e}");
}

#[test]
fn defined_tells_whether_a_pv_has_a_value() {
    let log = log_of(
        r#"
        if (defined $avp(x)) { log("x defined"); } else { log("x undefined"); }
        $avp(x) = "v";
        if (defined $avp(x)) { log("x defined"); }
        if (defined $x(k)) { log("k defined"); } else { log("k undefined"); }
        if (defined $null) { log("null defined"); } else { log("null undefined"); }
        "#,
    );
    assert_eq!(
        log,
        ["x undefined", "x defined", "k undefined", "null undefined"]
    );
}

#[test]
fn strlen_and_strempty() {
    let log = log_of(
        r#"
        $var(s) = "hello";
        $var(e) = "";
        $var(n) = strlen($var(s));
        log("len=$var(n)");
        if (strlen($var(s)) > 4) { log("long"); }
        if (strempty($var(e))) { log("e empty"); }
        if (strempty($var(s))) { log("s empty"); }
        if (strempty($avp(none))) { log("null empty"); }
        "#,
    );
    assert_eq!(log, ["len=5", "long", "e empty", "null empty"]);
}

// ---------------------------------------------------------------------------------------------
// Variables (reference 2.4)
// ---------------------------------------------------------------------------------------------

#[test]
fn var_keeps_its_value_across_runs_of_the_same_worker() {
    let p = build(
        r#"
        request_route {
            $var(n) = $var(n) + 1;
            log("n=$var(n)");
        }
        "#,
    );
    // The worker's $var slots outlive each message's context.
    let mut worker_vars = Vec::new();
    let mut logs = Vec::new();
    for msg in ["m1", "m2", "m3"] {
        let mut ctx = TestCtx::new(msg);
        ctx.vars = std::mem::take(&mut worker_vars);
        p.run(p.request_route().unwrap(), &mut ctx);
        worker_vars = ctx.vars;
        logs.extend(ctx.log);
    }
    assert_eq!(logs, ["n=1", "n=2", "n=3"]);
    assert_eq!(p.var_names(), ["n"]);
    // Another worker starts from its own slots.
    let (_, ctx) = run_on(&p, "m4");
    assert_eq!(ctx.log, ["n=1"]);
}

#[test]
fn var_assigned_null_becomes_zero() {
    let log = log_of(
        r#"
        $var(x) = "abc";
        $var(x) = $null;
        log("x=$var(x)");
        if ($var(x) == 0) { log("zero"); }
        if (defined $var(x)) { log("defined"); }
        "#,
    );
    assert_eq!(log, ["x=0", "zero", "defined"]);
}

#[test]
fn avp_is_a_stack_with_index_and_all() {
    let log = log_of(
        r#"
        $avp(a) = 1;
        $avp(a) = 2;
        log("top=$avp(a) second=$(avp(a)[1]) all=$(avp(a)[*]) last=$(avp(a)[-1])");
        "#,
    );
    assert_eq!(log, ["top=2 second=1 all=2, 1 last=1"]);
}

#[test]
fn avp_assigned_null_removes_only_the_top() {
    let log = log_of(
        r#"
        $avp(a) = 1;
        $avp(a) = 2;
        $avp(a) = 3;
        $avp(a) = $null;
        log("all=$(avp(a)[*])");
        "#,
    );
    assert_eq!(log, ["all=2, 1"]);
}

#[test]
fn avp_all_assigned_null_removes_all() {
    let log = log_of(
        r#"
        $avp(a) = 1;
        $avp(a) = 2;
        $avp(b) = "keep";
        $(avp(a)[*]) = $null;
        log("a=$avp(a) b=$avp(b)");
        if (!defined $avp(a)) { log("gone"); }
        "#,
    );
    assert_eq!(log, ["a=<null> b=keep", "gone"]);
}

#[test]
fn avp_all_assigned_a_value_replaces_all() {
    let log = log_of(
        r#"
        $avp(a) = 1;
        $avp(a) = 2;
        $(avp(a)[*]) = "only";
        log("all=$(avp(a)[*])");
        "#,
    );
    assert_eq!(log, ["all=only"]);
}

#[test]
fn avp_index_from_a_pseudo_variable() {
    let log = log_of(
        r#"
        $avp(a) = "x";
        $avp(a) = "y";
        $avp(a) = "z";
        $var(i) = 0;
        while ($var(i) < 3) {
            log("$(avp(a)[$var(i)])");
            $var(i) = $var(i) + 1;
        }
        "#,
    );
    assert_eq!(log, ["z", "y", "x"]);
}

#[test]
fn avps_live_in_the_context_and_die_with_it() {
    let p = build(
        r#"
        request_route {
            log("before=$avp(a)");
            $avp(a) = "set";
        }
        "#,
    );
    let (_, ctx) = run_on(&p, "m1");
    assert_eq!(ctx.log, ["before=<null>"]);
    let (_, ctx) = run_on(&p, "m2");
    assert_eq!(ctx.log, ["before=<null>"]);
}

#[test]
fn xavp_fields_and_items_follow_the_reference() {
    let log = log_of(
        r#"
        $xavp(x=>a) = 1;
        $xavp(x[0]=>b) = 2;
        $xavp(x=>a) = 3;
        log("a=$xavp(x=>a) a1=$xavp(x[1]=>a) b1=$xavp(x[1]=>b) b0=$xavp(x[0]=>b)");
        "#,
    );
    assert_eq!(log, ["a=3 a1=1 b1=2 b0=<null>"]);
}

#[test]
fn xavp_item_assigned_null_removes_that_item() {
    let log = log_of(
        r#"
        $xavp(x=>a) = 1;
        $xavp(x=>a) = 2;
        $xavp(x[0]) = $null;
        log("a=$xavp(x=>a) a1=$xavp(x[1]=>a)");
        "#,
    );
    assert_eq!(log, ["a=1 a1=<null>"]);
}

#[test]
fn xavp_root_assigned_null_removes_only_the_top_item() {
    let log = log_of(
        r#"
        $xavp(x=>a) = 1;
        $xavp(x=>a) = 2;
        $xavp(x) = $null;
        log("a=$xavp(x=>a) a1=$xavp(x[1]=>a)");
        "#,
    );
    assert_eq!(log, ["a=1 a1=<null>"]);
}

#[test]
fn xavp_field_assigned_null_removes_its_top_value() {
    let log = log_of(
        r#"
        $xavp(x=>a) = 1;
        $xavp(x[0]=>a) = 2;
        log("a=$xavp(x=>a) a[1]=$xavp(x=>a[1])");
        $xavp(x=>a) = $null;
        log("a=$xavp(x=>a)");
        "#,
    );
    assert_eq!(log, ["a=2 a[1]=1", "a=1"]);
}

#[test]
fn shv_is_shared_between_contexts_of_one_program() {
    let p = build(
        r#"
        request_route {
            $shv(hits) = $shv(hits) + 1;
            log("hits=$shv(hits)");
        }
        "#,
    );
    let (_, a) = run_on(&p, "from worker 1");
    let (_, b) = run_on(&p, "from worker 2");
    assert_eq!(a.log, ["hits=1"]);
    assert_eq!(b.log, ["hits=2"]);
    let snapshot = p.shared_vars().snapshot();
    assert_eq!(snapshot, [("hits".to_owned(), Value::Int(2))]);
}

#[test]
fn null_prints_as_null_marker_in_a_format() {
    let log = log_of(
        r#"
        log("v=$null a=$avp(missing) x=$xavp(nope=>f)");
        "#,
    );
    assert_eq!(log, ["v=<null> a=<null> x=<null>"]);
}

#[test]
fn host_pvs_read_and_write() {
    let p = build(
        r#"
        request_route {
            $x(k) = "v1";
            $x(other) = 5;
            log("msg=$msg k=$x(k) other=$x(other)");
            $x(k) = $null;
            log("k=$x(k)");
        }
        "#,
    );
    let message = String::from("REGISTER sip:r SIP/2.0");
    let (_, ctx) = run_on(&p, &message);
    assert_eq!(
        ctx.log,
        ["msg=REGISTER sip:r SIP/2.0 k=v1 other=5", "k=<null>"]
    );
    assert_eq!(ctx.x.get("other"), Some(&Value::Int(5)));
}

// ---------------------------------------------------------------------------------------------
// Transformations
// ---------------------------------------------------------------------------------------------

#[test]
fn string_transformations() {
    let log = log_of(
        r#"
        $var(s) = "HeLLo";
        log("len=$(var(s){s.len}) sub=$(var(s){s.substr,1,2}) low=$(var(s){s.tolower})");
        $var(n) = $(var(s){s.len});
        if ($var(n) == 5) { log("int result"); }
        "#,
    );
    assert_eq!(log, ["len=5 sub=eL low=hello", "int result"]);
}

#[test]
fn chained_transformations_apply_left_to_right() {
    let log = log_of(
        r#"
        $var(s) = "HeLLo";
        log("$(var(s){s.tolower}{s.substr,1,3}) $(var(s){s.substr,0,3}{s.len})");
        "#,
    );
    assert_eq!(log, ["ell 3"]);
}

#[test]
fn param_value_transformation() {
    let log = log_of(
        r#"
        $var(p) = "a=1;b=2;c=3";
        log("b=$(var(p){param.value,b}) z=[$(var(p){param.value,z})]");
        "#,
    );
    assert_eq!(log, ["b=2 z=[]"]);
}

#[test]
fn transformation_with_a_pv_parameter() {
    let log = log_of(
        r#"
        $var(s) = "abcdef";
        $var(start) = 2;
        $var(name) = "c";
        $var(p) = "a=1;c=9";
        log("$(var(s){s.substr,$var(start),3}) $(var(p){param.value,$var(name)})");
        "#,
    );
    assert_eq!(log, ["cde 9"]);
}

#[test]
fn transformation_on_a_host_pv() {
    let p = build(
        r#"
        request_route {
            log("$(msg{s.tolower}{s.select,0, })");
        }
        "#,
    );
    let (_, ctx) = run_on(&p, "OPTIONS sip:x SIP/2.0");
    assert_eq!(ctx.log, ["options"]);
}

#[test]
fn unknown_transformation_is_a_compile_error() {
    let errors = compile_errors(
        "request_route {\n    log(\"$(var(s){s.nosuch})\");\n    $var(y) = $(var(s){zz.len});\n}\n",
    );
    let a = find_error(
        &errors,
        "UnknownTransformation s.nosuch",
        |k| matches!(k, ErrorKind::UnknownTransformation { name } if name.starts_with("s.nosuch")),
    );
    assert_eq!(a.pos.line, 2);
    let b = find_error(
        &errors,
        "UnknownTransformation zz.len",
        |k| matches!(k, ErrorKind::UnknownTransformation { name } if name.starts_with("zz.len")),
    );
    assert_eq!(b.pos.line, 3);
}

#[test]
fn transformation_with_wrong_parameter_count_is_a_compile_error() {
    let errors = compile_errors("request_route {\n    $var(y) = $(var(s){s.substr,1});\n}\n");
    find_error(
        &errors,
        "UnknownTransformation s.substr",
        |k| matches!(k, ErrorKind::UnknownTransformation { name } if name.starts_with("s.substr")),
    );
}

#[test]
fn assignment_to_a_transformed_pv_is_refused() {
    let errors = compile_errors("request_route {\n    $(var(s){s.len}) = 1;\n}\n");
    find_error(&errors, "ReadOnlyPseudoVariable", |k| {
        matches!(k, ErrorKind::ReadOnlyPseudoVariable { .. })
    });
}

// ---------------------------------------------------------------------------------------------
// The compile step
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_function_is_reported_with_a_did_you_mean_hint() {
    let errors = compile_errors("request_route {\n    lgo(\"x\");\n}\n");
    let e = find_error(
        &errors,
        "UnknownFunction",
        |k| matches!(k, ErrorKind::UnknownFunction { name } if name == "lgo"),
    );
    assert_eq!(e.pos.line, 2);
    assert_eq!(e.pos.col, 5);
    assert_eq!(e.hint.as_deref(), Some("did you mean `log`?"));
    assert!(
        e.to_string()
            .starts_with("t.cfg:2:5: unknown function 'lgo'"),
        "{e}"
    );
}

#[test]
fn unknown_function_far_from_any_name_has_no_hint() {
    let errors = compile_errors("request_route {\n    completely_unknown();\n}\n");
    let e = find_error(&errors, "UnknownFunction", |k| {
        matches!(k, ErrorKind::UnknownFunction { .. })
    });
    assert_eq!(e.hint, None);
}

#[test]
fn function_of_a_module_not_loaded_hints_at_loadmodule() {
    let text = "request_route {\n    needs_tm();\n}\n";
    let errors = compile_errors(text);
    let e = find_error(
        &errors,
        "UnknownFunction",
        |k| matches!(k, ErrorKind::UnknownFunction { name } if name == "needs_tm"),
    );
    assert!(
        e.hint.as_deref().unwrap().contains("loadmodule \"tm.so\""),
        "{e}"
    );
    let options = CompileOptions {
        loaded_modules: vec!["tm".to_owned()],
        ..CompileOptions::default()
    };
    build_with(text, &options);
}

#[test]
fn wrong_argument_count_is_reported() {
    let errors = compile_errors(
        "request_route {\n    log(\"a\", \"b\");\n    count(1);\n    two();\n    two(1, 2);\n}\n",
    );
    assert_eq!(errors.len(), 3, "{errors:?}");
    let e = find_error(&errors, "WrongArgumentCount log", |k| {
        matches!(k, ErrorKind::WrongArgumentCount { function, expected, got: 2 }
            if function == "log" && expected == "1")
    });
    assert_eq!(e.pos.line, 2);
    find_error(&errors, "WrongArgumentCount count", |k| {
        matches!(k, ErrorKind::WrongArgumentCount { function, expected, got: 1 }
            if function == "count" && expected == "0")
    });
    let e = find_error(&errors, "WrongArgumentCount two", |k| {
        matches!(k, ErrorKind::WrongArgumentCount { function, expected, got: 0 }
            if function == "two" && expected == "1 to 2")
    });
    assert_eq!(e.pos.line, 4);
}

#[test]
fn fixup_rejection_points_at_the_argument() {
    let errors = compile_errors("request_route {\n    pick(  \"zz\");\n}\n");
    let e = find_error(&errors, "BadArgument", |k| {
        matches!(k, ErrorKind::BadArgument { function, index: 1, reason }
            if function == "pick" && reason.contains("zz"))
    });
    assert_eq!((e.pos.line, e.pos.col), (2, 12), "{e}");
}

#[test]
fn fixup_rejection_of_a_non_integer_constant() {
    let errors = compile_errors("request_route {\n    ret(\"abc\");\n}\n");
    let e = find_error(
        &errors,
        "BadArgument",
        |k| matches!(k, ErrorKind::BadArgument { function, index: 1, .. } if function == "ret"),
    );
    assert_eq!((e.pos.line, e.pos.col), (2, 9), "{e}");
}

#[test]
fn function_arguments_may_be_pvs_and_expressions() {
    let log = log_of(
        r#"
        $var(n) = 3;
        ret($var(n));
        ret($var(n) * 2);
        ret("4");
        log($var(n));
        "#,
    );
    assert_eq!(log, ["ret(3)", "ret(6)", "ret(4)", "3"]);
}

#[test]
fn unknown_route_is_a_compile_error() {
    let errors = compile_errors("request_route {\n    route(NOPE);\n}\nroute[YES] { exit; }\n");
    let e = find_error(
        &errors,
        "UnknownRoute",
        |k| matches!(k, ErrorKind::UnknownRoute { name } if name == "NOPE"),
    );
    assert_eq!(e.pos.line, 2);
}

#[test]
fn function_not_allowed_in_the_route_type_is_refused() {
    let errors = compile_errors(
        "request_route {\n    req_only();\n}\nfailure_route[F] {\n    req_only();\n}\n",
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = find_error(&errors, "FunctionNotAllowedHere", |k| {
        matches!(k, ErrorKind::FunctionNotAllowedHere { function, route }
            if function == "req_only" && route == "failure_route")
    });
    assert_eq!(e.pos.line, 5);
    assert!(e.hint.as_deref().unwrap().contains("request_route"), "{e}");
}

#[test]
fn function_not_allowed_is_refused_when_reached_through_route_from_failure_route() {
    let text = r#"
        request_route { route(COMMON); }
        failure_route[F] { route(MID); }
        route[MID] { route(COMMON); }
        route[COMMON] {
            log("common");
            req_only();
        }
    "#;
    let errors = compile_errors(text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = find_error(&errors, "FunctionNotAllowedHere", |k| {
        matches!(k, ErrorKind::FunctionNotAllowedHere { function, route }
            if function == "req_only" && route == "failure_route")
    });
    assert_eq!(e.pos.line, 7);
}

#[test]
fn request_only_function_is_allowed_in_event_route_and_unreached_sub_route() {
    let p = build(
        r#"
        request_route { req_only(); }
        event_route[test:ev] { req_only(); route(SUB); }
        route[SUB] { req_only(); }
        route[UNUSED] { req_only(); }
        "#,
    );
    let ev = p.event_route("test:ev").unwrap();
    let mut ctx = TestCtx::new("m");
    assert_eq!(p.run(ev, &mut ctx), OK);
}

#[test]
fn assignment_to_a_read_only_pv_is_a_compile_error() {
    let errors = compile_errors("request_route {\n    $msg = \"x\";\n    $rc = 1;\n}\n");
    assert_eq!(errors.len(), 2, "{errors:?}");
    let e = find_error(
        &errors,
        "ReadOnlyPseudoVariable msg",
        |k| matches!(k, ErrorKind::ReadOnlyPseudoVariable { name } if name == "msg"),
    );
    assert_eq!((e.pos.line, e.pos.col), (2, 5));
    find_error(
        &errors,
        "ReadOnlyPseudoVariable rc",
        |k| matches!(k, ErrorKind::ReadOnlyPseudoVariable { name } if name == "rc"),
    );
}

#[test]
fn unknown_pseudo_variable_is_a_compile_error_with_hint() {
    let errors = compile_errors("request_route {\n    log(\"$mgs\");\n}\n");
    let e = find_error(
        &errors,
        "UnknownPseudoVariable",
        |k| matches!(k, ErrorKind::UnknownPseudoVariable { name } if name == "mgs"),
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `msg`?"));
}

#[test]
fn host_pv_maker_refusal_is_a_compile_error() {
    let errors = compile_errors("request_route {\n    $x = 1;\n}\n");
    find_error(
        &errors,
        "BadPseudoVariable",
        |k| matches!(k, ErrorKind::BadPseudoVariable(s) if s.contains("needs a name")),
    );
}

#[test]
fn several_errors_are_reported_at_once() {
    let text = "request_route {\n    lgo(\"a\");\n    count(1);\n    route(NOPE);\n    \
                if (1) {\n        pick(\"q\");\n    }\n}\nroute[R] {\n    $msg = 1;\n}\n";
    let errors = compile_errors(text);
    let mut lines: Vec<u32> = errors.iter().map(|e| e.pos.line).collect();
    lines.sort_unstable();
    assert_eq!(lines, [2, 3, 4, 6, 10], "{errors:?}");
    assert!(errors
        .iter()
        .any(|e| matches!(e.kind, ErrorKind::UnknownFunction { .. })));
    assert!(errors
        .iter()
        .any(|e| matches!(e.kind, ErrorKind::WrongArgumentCount { .. })));
    assert!(errors
        .iter()
        .any(|e| matches!(e.kind, ErrorKind::UnknownRoute { .. })));
    assert!(errors
        .iter()
        .any(|e| matches!(e.kind, ErrorKind::BadArgument { .. })));
    assert!(errors
        .iter()
        .any(|e| matches!(e.kind, ErrorKind::ReadOnlyPseudoVariable { .. })));
}

#[test]
fn errors_in_condition_and_body_of_one_if_are_both_reported() {
    let errors = compile_errors("request_route {\n    if (lgo()) {\n        cuont();\n    }\n}\n");
    let mut lines: Vec<u32> = errors.iter().map(|e| e.pos.line).collect();
    lines.sort_unstable();
    assert_eq!(lines, [2, 3], "{errors:?}");
}

#[test]
fn errors_in_switch_subject_labels_and_bodies_are_all_reported() {
    let errors = compile_errors(
        "request_route {\n    switch (lgo()) {\n        case /\"(bad\":\n            cuont();\n        \
         default:\n            pikc();\n    }\n}\n",
    );
    let mut lines: Vec<u32> = errors.iter().map(|e| e.pos.line).collect();
    lines.sort_unstable();
    assert_eq!(lines, [2, 3, 4, 6], "{errors:?}");
    find_error(&errors, "BadRegex", |k| {
        matches!(k, ErrorKind::BadRegex { .. })
    });
}

#[test]
fn errors_in_while_condition_and_body_are_both_reported() {
    let errors =
        compile_errors("request_route {\n    while (lgo()) {\n        cuont();\n    }\n}\n");
    let mut lines: Vec<u32> = errors.iter().map(|e| e.pos.line).collect();
    lines.sort_unstable();
    assert_eq!(lines, [2, 3], "{errors:?}");
}

#[test]
fn compile_errors_come_in_source_order() {
    let errors = compile_errors(
        "request_route {\n    if (lgo()) {\n        cuont();\n    } else {\n        pikc();\n    }\n}\n",
    );
    let lines: Vec<u32> = errors.iter().map(|e| e.pos.line).collect();
    assert_eq!(lines, [2, 3, 5], "{errors:?}");
}

#[test]
fn missing_request_route_is_a_compile_error() {
    let errors = compile_errors("route[R] { exit; }\n");
    find_error(&errors, "MissingRequestRoute", |k| {
        matches!(k, ErrorKind::MissingRequestRoute)
    });
}

#[test]
fn duplicated_unnamed_request_route_blocks_are_joined_in_order() {
    let (r, log) = run(r#"
        request_route { log("first"); }
        route[MID] { log("named"); }
        route { log("second"); }
        request_route { log("third"); route(MID); }
        "#);
    assert_eq!(log, ["first", "second", "third", "named"]);
    assert_eq!(r, OK);
}

#[test]
fn named_routes_are_found_by_kind_and_name() {
    let p = build(
        r#"
        request_route { exit; }
        route[R] { log("r"); }
        failure_route[F] { log("f"); return -2; }
        onreply_route[REPLY] { log("reply"); }
        onreply_route { log("core reply"); }
        "#,
    );
    let f = p.route(RouteKind::Failure, "F").unwrap();
    let mut ctx = TestCtx::new("m");
    let r = p.run(f, &mut ctx);
    assert_eq!(r.code, -2);
    assert_eq!(ctx.log, ["f"]);
    assert!(p.route(RouteKind::Reply, "REPLY").is_some());
    assert!(p.route(RouteKind::Request, "R").is_some());
    assert!(p.route(RouteKind::Request, "F").is_none());
    let core = p.core_reply_route().unwrap();
    let mut ctx = TestCtx::new("m");
    p.run(core, &mut ctx);
    assert_eq!(ctx.log, ["core reply"]);
}

// ---------------------------------------------------------------------------------------------
// Preprocessor, end to end (reference 2.6)
// ---------------------------------------------------------------------------------------------

#[test]
fn define_is_replaced_as_a_token_but_not_inside_strings() {
    let log = run(r#"#!define MYVAL 42
#!define MYSTR "text"
#!define GREETING log("hi")
request_route {
    $var(n) = MYVAL;
    $var(s) = MYSTR;
    log("n=$var(n) s=$var(s) str=MYVAL");
    GREETING;
    if ($var(n) == MYVAL) { log("equal"); }
}
"#)
    .1;
    assert_eq!(log, ["n=42 s=text str=MYVAL", "hi", "equal"]);
}

#[test]
fn define_value_spans_lines_and_trydef_redefine_apply() {
    let log = run(r#"#!define LONG 1 + \
2
#!define A 10
#!trydef A 20
#!trydef B 30
#!redefine A 40
request_route {
    $var(l) = LONG;
    log("l=$var(l)");
    $var(a) = A;
    $var(b) = B;
    log("a=$var(a) b=$var(b)");
}
"#)
    .1;
    assert_eq!(log, ["l=3", "a=40 b=30"]);
}

#[test]
fn ifdef_else_selects_code() {
    let text = r#"#!define WITH_A
request_route {
#!ifdef WITH_A
    log("a on");
#!else
    log("a off");
#!endif
#!ifdef WITH_B
    log("b on");
#!else
    log("b off");
#!endif
#!ifndef WITH_B
    log("not b");
#!endif
}
"#;
    assert_eq!(run(text).1, ["a on", "b off", "not b"]);
}

#[test]
fn ifdef_false_branch_is_not_even_compiled() {
    // The skipped branch calls an unknown function: no error.
    let text = r#"request_route {
#!ifdef NEVER
    no_such_function();
#!endif
    log("ok");
}
"#;
    assert_eq!(run(text).1, ["ok"]);
}

#[test]
fn defines_passed_by_the_caller_select_code() {
    let text = r#"request_route {
#!ifdef FROM_CMDLINE
    log("defined: FROM_CMDLINE");
#!endif
}
"#;
    let mut d = Defines::new();
    d.define("FROM_CMDLINE", Some("1"));
    let config = parse_str("t.cfg", text, &d).unwrap();
    let p = compile(&config, &registry(), &CompileOptions::default()).unwrap();
    let mut ctx = TestCtx::new("m");
    p.run(p.request_route().unwrap(), &mut ctx);
    assert_eq!(ctx.log, ["defined: FROM_CMDLINE"]);
}

#[test]
fn subst_applies_to_string_literals() {
    let log = run(r#"#!subst "/DOMAIN/example.com/"
#!substdef "/SUBX/substituted/"
request_route {
    log("host=DOMAIN");
    log("sub=SUBX");
    $var(v) = SUBX;
    log("token=$var(v)");
}
"#)
    .1;
    assert_eq!(
        log,
        ["host=example.com", "sub=substituted", "token=substituted"]
    );
}

#[test]
fn subst_with_global_flag_replaces_every_occurrence() {
    let log = run(r#"#!subst "/o/0/g"
request_route {
    log("foo boo");
}
"#)
    .1;
    assert_eq!(log, ["f00 b00"]);
}

// ---------------------------------------------------------------------------------------------
// Misc
// ---------------------------------------------------------------------------------------------

#[test]
fn program_is_reusable_and_runs_do_not_share_message_state() {
    let p = build(
        r#"
        request_route {
            count();
            $avp(a) = $msg;
            log("$(avp(a)[*])");
        }
        "#,
    );
    let msgs = [String::from("one"), String::from("two")];
    for m in &msgs {
        let (r, ctx) = run_on(&p, m);
        assert_eq!(r, OK);
        assert_eq!(ctx.counter, 1);
        assert_eq!(ctx.log, [m.as_str()]);
    }
}

#[test]
fn program_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    let p = build("request_route { $shv(n) = $shv(n) + 1; }");
    assert_send_sync(&p);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut ctx = TestCtx::new("m");
                p.run(p.request_route().unwrap(), &mut ctx);
            });
        }
    });
    // The read-then-write of `$shv(n) = $shv(n) + 1` is not atomic (nor is it in Kamailio):
    // only the range is certain.
    let n = p.shared_vars().snapshot()[0].1.as_int();
    assert!((1..=4).contains(&n), "{n}");
}
