//! `sable`: the server binary. Loads a kamailio.cfg-style config (or the embedded default),
//! checks it (`-c`), or runs it in the foreground until SIGTERM/SIGINT.
//!
//! Exit codes: 0 stopped cleanly (or `-c` found no error); 1 the config has errors; 2 bad
//! command line; 3 the server could not start (a socket could not be bound, a module
//! failed to start).

use sable_engine::{load, Core, Dispatcher, Loaded, ModuleSet};
use sable_script::{parse_file, parse_str, Defines, ScriptError};
use sable_transport::{Transport, TransportConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_CONFIG: &str = include_str!("default.cfg");

const USAGE: &str = "\
Usage: sable [options]

  -f FILE        config file (default: the embedded default config)
  -c             check the config and exit (every error printed as file:line:col)
  -A NAME[=VAL]  define a preprocessor symbol (as #!define NAME VAL)
  -d             raise the log level by one (repeatable: -ddd)
  -l ADDRESS     add a listen address ([proto:]host[:port])
  -E -D -e       accepted for Kamailio compatibility (Sable always runs in the
                 foreground and logs to stderr)
  -L DIR -m MB -M MB
                 accepted and ignored (modules are built in; memory is not pooled)
  -V, -v         print the version and exit
  -h             this help

Exit codes: 0 clean stop or config ok, 1 config errors, 2 bad command line,
3 could not start.";

#[derive(Debug, Default, Clone)]
struct Options {
    file: Option<PathBuf>,
    check: bool,
    defines: Vec<(String, Option<String>)>,
    debug_raise: i32,
    listens: Vec<String>,
}

fn parse_args(args: &[String]) -> Result<Option<Options>, String> {
    let mut o = Options::default();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        let Some(flags) = arg.strip_prefix('-') else {
            return Err(format!("unexpected argument '{arg}'"));
        };
        if flags.is_empty() {
            return Err("unexpected '-'".to_owned());
        }
        for (k, c) in flags.char_indices() {
            // Options with a value take the rest of this argument or the next one.
            let mut value = || -> Result<String, String> {
                let rest = flags.get(k + c.len_utf8()..).unwrap_or("");
                if !rest.is_empty() {
                    Ok(rest.to_owned())
                } else {
                    let v = args.get(i).cloned().ok_or(format!("-{c} needs a value"))?;
                    i += 1;
                    Ok(v)
                }
            };
            match c {
                'c' => o.check = true,
                'd' => o.debug_raise += 1,
                'E' | 'D' | 'e' => {}
                'V' | 'v' => {
                    println!(
                        "version: sable {} ({}/{})",
                        env!("CARGO_PKG_VERSION"),
                        std::env::consts::ARCH,
                        std::env::consts::OS
                    );
                    return Ok(None);
                }
                'h' => {
                    println!("{USAGE}");
                    return Ok(None);
                }
                'f' | 'A' | 'l' | 'L' | 'm' | 'M' => {
                    let v = value()?;
                    match c {
                        'f' => o.file = Some(PathBuf::from(v)),
                        'A' => {
                            let (n, val) = match v.split_once('=') {
                                Some((n, val)) => (n.to_owned(), Some(val.to_owned())),
                                None => (v, None),
                            };
                            if n.is_empty()
                                || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                            {
                                return Err(format!("-A: bad symbol name '{n}'"));
                            }
                            o.defines.push((n, val));
                        }
                        'l' => o.listens.push(v),
                        _ => {}
                    }
                    break;
                }
                other => return Err(format!("unknown option -{other}")),
            }
        }
    }
    Ok(Some(o))
}

fn print_errors(errors: &[ScriptError]) {
    for e in errors {
        eprintln!("{e}");
    }
    eprintln!(
        "{} error{} in the config",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
}

/// Reads and preprocesses the config the options name (the file, or the embedded default),
/// with the `-A` defines and `-l` listens.
fn read_config(o: &Options) -> Result<sable_script::ast::Config, Vec<ScriptError>> {
    let mut defines = Defines::with_predefined();
    for (n, v) in &o.defines {
        defines.define(n, v.as_deref());
    }
    let mut config = match &o.file {
        Some(f) => parse_file(f, &defines)?,
        None => parse_str("<default config>", DEFAULT_CONFIG, &defines)?,
    };
    for l in &o.listens {
        config.items.push(sable_script::ast::Item::Param {
            name: "listen".to_owned(),
            value: sable_script::ast::ParamValue::Raw(l.clone()),
            pos: sable_script::ast::Pos::default(),
        });
    }
    Ok(config)
}

fn load_config(o: &Options) -> Result<(sable_script::ast::Config, Loaded), Vec<ScriptError>> {
    let config = read_config(o)?;
    let loaded = load(&config, ModuleSet::new(sable_modules::all()))?;
    Ok((config, loaded))
}

/// What a reload needs: how the config was read, the running modules, what it started with.
struct Reload {
    options: Options,
    modules: Arc<ModuleSet>,
    running: sable_engine::RunningConfig,
    /// One reload at a time (RPC connections, HTTP and SIGHUP may ask together).
    busy: std::sync::Mutex<()>,
}

impl Reload {
    /// Re-reads and compiles the config and swaps it in. `Ok`: what was not applied;
    /// `Err`: the errors (the running config stays).
    fn run(&self, core: &Core) -> Result<Vec<String>, Vec<String>> {
        let _one_at_a_time = self
            .busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let show =
            |errors: Vec<ScriptError>| errors.iter().map(ToString::to_string).collect::<Vec<_>>();
        let config = read_config(&self.options).map_err(show)?;
        let new = sable_engine::reload(&config, &self.modules, &self.running).map_err(show)?;
        *core.cfg_vars.write() = Some(new.cfg_vars);
        core.set_program(Arc::new(new.program));
        let level =
            sable_engine::LogLevel(new.core.debug.0.saturating_add(self.options.debug_raise));
        if level.0 != core.log_level() {
            core.set_log_level(level);
        }
        Ok(new.not_applied)
    }

    /// Runs a reload and logs what happened.
    fn run_logged(&self, core: &Core, why: &str) -> Result<Vec<String>, Vec<String>> {
        let r = self.run(core);
        match &r {
            Ok(notes) => {
                tracing::info!("{why}: config reloaded");
                for n in notes {
                    tracing::warn!("reload: {n}");
                }
            }
            Err(errors) => {
                for e in errors {
                    tracing::error!("reload refused: {e}");
                }
            }
        }
        r
    }
}

/// Sets up logging to stderr at `level` (or `SABLE_LOG`); returns the function that changes
/// the level at run time (`corex.debug`).
fn init_logging(
    level: sable_engine::LogLevel,
) -> Box<dyn Fn(sable_engine::LogLevel) + Send + Sync> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SABLE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.filter()));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .try_init();
    Box::new(move |level: sable_engine::LogLevel| {
        let _ = handle.modify(|f| *f = tracing_subscriber::EnvFilter::new(level.filter()));
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_args(&args) {
        Ok(Some(o)) => o,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sable: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (config, loaded) = match load_config(&options) {
        Ok(l) => l,
        Err(errors) => {
            print_errors(&errors);
            return ExitCode::from(1);
        }
    };
    let level = sable_engine::LogLevel(loaded.core.debug.0.saturating_add(options.debug_raise));
    if options.check {
        for w in &loaded.core.warnings {
            eprintln!("warning: {w}");
        }
        println!("config file ok, exiting...");
        return ExitCode::SUCCESS;
    }
    let set_level = init_logging(level);
    let set_level: Box<dyn Fn(sable_engine::LogLevel) + Send + Sync> = set_level;
    let running = sable_engine::RunningConfig::of(&config, &loaded.core);
    match run(loaded, set_level, level, options, running) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sable: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn run(
    loaded: Loaded,
    set_level: Box<dyn Fn(sable_engine::LogLevel) + Send + Sync>,
    level: sable_engine::LogLevel,
    options: Options,
    running: sable_engine::RunningConfig,
) -> anyhow::Result<()> {
    for w in &loaded.core.warnings {
        tracing::warn!("{w}");
    }
    let cfg = &loaded.core;
    let framer_limits = sable_sip::FramerLimits {
        accept_no_content_length: cfg.tcp_accept_no_cl,
        ..Default::default()
    };
    let listens = cfg.effective_listens();
    if listens.is_empty() {
        anyhow::bail!("no socket to listen on (disable_tcp=yes with only TCP listen= lines?)");
    }
    let mut transport = Transport::bind(TransportConfig {
        listens,
        udp_children: cfg.children.max(1),
        tcp_connection_lifetime: cfg.tcp_connection_lifetime,
        tcp_max_connections: cfg.tcp_max_connections,
        tcp_accept_no_cl: cfg.tcp_accept_no_cl,
        framer_limits,
    })?;
    let sockets = transport.sockets().to_vec();
    let Loaded {
        core: core_config,
        modules,
        program,
        cfg_vars,
    } = loaded;
    let core = Arc::new(Core::new(core_config, transport.handle(), sockets));
    let _ = core.log_level_setter.set(set_level);
    *core.cfg_vars.write() = Some(cfg_vars);
    // The level in effect (debug= raised by -d), as corex.debug reports it.
    core.set_log_level(level);
    modules.init(&core).map_err(|e| anyhow::anyhow!(e))?;

    // The RPC methods (core, modules, cfg.reload), then the control socket sablectl talks to.
    let modules = Arc::new(modules);
    let reload = Arc::new(Reload {
        options,
        modules: modules.clone(),
        running,
        busy: std::sync::Mutex::new(()),
    });
    let mut rpc = sable_rpc::Registry::new();
    sable_engine::rpc::register(&mut rpc, &core);
    modules.rpc(&mut rpc, &core);
    {
        let (reload, core) = (reload.clone(), core.clone());
        let registered = rpc.register(
            "cfg.reload",
            "Re-reads, compiles and swaps in the config; a config that does not compile is \
             refused with its errors and the running one stays. Returns what could not change \
             while running.",
            ["struct"],
            sable_rpc::MethodKind::Value,
            move |_| match reload.run_logged(&core, "cfg.reload") {
                Ok(notes) => Ok(serde_json::json!({ "reloaded": true, "not_applied": notes })),
                Err(errors) => Err(sable_rpc::RpcError::new(
                    500,
                    format!("config refused: {}", errors.join("; ")),
                )),
            },
        );
        if let Err(e) = registered {
            tracing::error!("{e}");
        }
    }
    let rpc = Arc::new(rpc);
    let _ = core.rpc.set(rpc.clone());
    let (ctl_path, ctl_mode) = core
        .ctl_socket
        .get()
        .cloned()
        .unwrap_or_else(|| (core.config.run_dir.join("sable_ctl"), 0o660));
    let control = match sable_rpc::ControlServer::start(&ctl_path, ctl_mode, rpc.clone(), 64) {
        Ok(c) => {
            tracing::info!("control socket on {}", ctl_path.display());
            let _ = core.ctl_running.set(ctl_path.clone());
            Some(c)
        }
        // Without modparam("ctl", ...) the default path may not be writable (not root):
        // the server runs without a control socket and says so.
        Err(e) if core.ctl_socket.get().is_none() => {
            tracing::warn!(
                "no control socket ({}: {e}); set modparam(\"ctl\", \"binrpc\", \"unix:PATH\")",
                ctl_path.display()
            );
            None
        }
        Err(e) => anyhow::bail!("cannot open the control socket {}: {e}", ctl_path.display()),
    };
    core.set_program(Arc::new(program));
    let dispatcher = Arc::new(Dispatcher::new(core.clone()));
    transport.start(dispatcher)?;
    for s in &core.sockets {
        tracing::info!("listening on {}:{}", s.proto, s.addr);
    }
    tracing::info!("sable {} started", env!("CARGO_PKG_VERSION"));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let signal = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => return r.map(|()| "SIGINT"),
                _ = term.recv() => return Ok::<_, std::io::Error>("SIGTERM"),
                // SIGHUP: reload the config, as cfg.reload does.
                _ = hup.recv() => {
                    let _ = reload.run_logged(&core, "SIGHUP");
                }
            }
        }
    })?;
    tracing::info!("{signal}: stopping (in-flight work gets up to 2 s)");
    if let Some(c) = control {
        c.stop();
    }
    transport.shutdown(Duration::from_secs(2));
    // No message is handled any more: what modules keep for later is written now.
    modules.stop(&core);
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn command_line() {
        let o = parse_args(&args("-c -f a.cfg -A WITH_X -A N=5 -ddd -DD -E"))
            .unwrap()
            .unwrap();
        assert!(o.check);
        assert_eq!(o.file, Some(PathBuf::from("a.cfg")));
        assert_eq!(
            o.defines,
            vec![
                ("WITH_X".to_owned(), None),
                ("N".to_owned(), Some("5".to_owned()))
            ]
        );
        assert_eq!(o.debug_raise, 3);
        let o = parse_args(&args("-cf b.cfg")).unwrap().unwrap();
        assert!(o.check);
        assert_eq!(o.file, Some(PathBuf::from("b.cfg")));
        assert!(parse_args(&args("-f")).is_err());
        assert!(parse_args(&args("-Z")).is_err());
        assert!(parse_args(&args("-A 1-2")).is_err());
        assert!(parse_args(&args("stray")).is_err());
    }

    #[test]
    fn the_default_config_loads() {
        let o = Options::default();
        let (_, loaded) = load_config(&o).unwrap();
        assert_eq!(loaded.core.effective_listens().len(), 1);
    }
}
