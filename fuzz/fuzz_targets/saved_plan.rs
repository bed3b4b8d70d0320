#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kvmtune::fuzzing::saved_plan(data);
});
