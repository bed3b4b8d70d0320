#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kvmtune::fuzzing::perf_report(data);
});
