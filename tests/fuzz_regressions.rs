//! Inputs the fuzzers found that once broke an invariant; each must now pass its target.

#[test]
fn config_cr_only_lines_with_complex_keys() {
    // CR-only line breaks and `?` (explicit key) indicators: once an unlocated error.
    let data = [
        13u8, 13, 13, 13, 13, 13, 13, 13, 13, 63, 13, 13, 32, 13, 32, 119, 13, 32, 13, 32, 119, 32,
        10, 32, 119, 32, 13, 13, 13, 13, 13, 32, 10, 32, 119, 32, 13, 13, 13, 13, 13, 13, 13, 13,
        63, 13, 13, 32, 32, 13, 10,
    ];
    kvmtune::fuzzing::config(&data);
}

#[test]
fn domain_xml_crash_258fd2dc() {
    let data = include_bytes!("../fuzz/artifacts-kept/domain_xml-258fd2dc");
    kvmtune::fuzzing::domain_xml(data);
}

#[test]
fn domain_xml_crash_ba4a5ccb() {
    let data = include_bytes!("../fuzz/artifacts-kept/domain_xml-ba4a5ccb");
    kvmtune::fuzzing::domain_xml(data);
}
