//! Target selection against PEFT's own `check_target_module_exists` and VILA's
//! `find_all_linear_names`, recorded in `fixtures/targets.json` by `fixtures/make_peft.py`.

mod common;

use std::path::Path;

use lora::{AdapterConfig, ModuleInfo, TargetSelector, find_all_linear_names};
use serde_json::Value;

fn table() -> Value {
    let text = std::fs::read_to_string(common::fixtures().join("targets.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn modules(table: &Value) -> Vec<ModuleInfo> {
    table["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| ModuleInfo {
            path: m["name"].as_str().unwrap().to_string(),
            is_linear: m["is_linear"].as_bool().unwrap(),
        })
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn peft_selection_table() {
    let table = table();
    let modules = modules(&table);
    let cases = table["peft"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let mut settings = case.as_object().unwrap().clone();
        let expected = strings(&settings.remove("selected").unwrap());
        let config: AdapterConfig = serde_json::from_value(Value::Object(settings)).unwrap();
        let selector = TargetSelector::from_config(&config).unwrap();
        let got: Vec<String> = modules
            .iter()
            .filter(|m| selector.matches(&m.path))
            .map(|m| m.path.clone())
            .collect();
        assert_eq!(got, expected, "case {case}");
    }
}

#[test]
fn vila_find_all_linear_names_table() {
    let table = table();
    let modules = modules(&table);
    for case in table["vila"].as_array().unwrap() {
        let llm = case["lora_llm"].as_bool().unwrap();
        let vt = case["lora_vt"].as_bool().unwrap();
        let got = find_all_linear_names(&modules, llm, vt).unwrap();
        assert_eq!(got, strings(&case["selected"]), "case {case}");
    }
}

#[test]
fn vila_list_as_target_modules_selects_exactly_itself() {
    // VILA writes the full names as `target_modules`; reading them back selects the same set.
    let table = table();
    let modules = modules(&table);
    let names = find_all_linear_names(&modules, true, false).unwrap();
    let config = AdapterConfig::new(8, 16.0, lora::TargetModules::Names(names.clone()));
    config.validate(Path::new("adapter_config.json")).unwrap();
    let mut selected = TargetSelector::from_config(&config)
        .unwrap()
        .select(&modules)
        .unwrap();
    selected.sort();
    assert_eq!(selected, names);
}
