//! The config front end on arbitrary text: preprocessing, parsing and format/pseudo-variable
//! parsing must return Ok or a positioned error, never panic or hang.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sable_script::ast::Pos;
use sable_script::{parse_format, parse_str, Defines};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut defines = Defines::with_predefined();
    defines.define("WITH_FUZZ", Some("1"));
    if let Err(errors) = parse_str("fuzz.cfg", text, &defines) {
        // Every error names a position inside the text (or its end).
        for e in &errors {
            assert!(e.pos.line >= 1 || e.pos == Pos::default());
        }
    }
    let _ = parse_format(text, Pos::default());
});
