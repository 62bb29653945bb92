"""Contract files: formats, extends, severity overrides, ignores, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_contracts_helpers import Feed, contract, ev

from tracetui.contracts import ContractError, load_contracts


def test_severity_override_and_glob_ignore(tmp_path: Path) -> None:
    c = contract(
        tmp_path,
        "extends: [dopejar]\n"
        "severity: {data.missing_key: error, 'schema.*': info}\n"
        "ignore: ['schema.trace_id_*']\n",
    )
    f = Feed(c)
    f.batch(ev("not-an-id", None, "altitude.transition", layer="altitude", status="odd"))
    got = {(x.rule, x.severity) for x in f.findings()}
    assert ("data.missing_key", "error") in got
    assert ("schema.unknown_status", "info") in got
    assert not any(rule.startswith("schema.trace_id") for rule, _ in got)
    assert not c.on("schema.trace_id_shape") and c.on("schema.unknown_status")


def test_ignore_wins_over_a_later_severity_override(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("extends: [correlation]\nignore: [propagation.deprecated_field]\n")
    c = contract(tmp_path, "extends: [base.yaml]\nseverity: {propagation.*: info}\n")
    assert not c.on("propagation.deprecated_field")
    assert c.severities["propagation.missing_parent_correlation"] == "info"


def test_extends_files_relative_to_the_extending_file_and_merges(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "team.toml").write_text(
        'extends = ["dopejar"]\n[operations."memory.read"]\nrequired = ["shard"]\n'
    )
    (tmp_path / "svc.json").write_text(
        '{"extends": ["shared/team.toml", "baggage"],'
        ' "operations": {"memory.read": {"required": ["region"]}}}'
    )
    c = load_contracts([str(tmp_path / "svc.json")], tmp_path)
    assert c.sources == [
        "preset dopejar",
        f"file {tmp_path / 'shared' / 'team.toml'}",
        "preset baggage",
        f"file {tmp_path / 'svc.json'}",
    ]
    ops = dict(c.operations)
    assert ops["memory.read"].required == ["namespace", "key", "tier", "shard", "region"]
    assert c.baggage is not None and "session_id" in c.baggage.deny


def test_default_is_dopejar_plus_the_project_file(tmp_path: Path) -> None:
    assert load_contracts([], tmp_path).sources == ["preset dopejar"]
    (tmp_path / ".tracetui.yaml").write_text("extends: [flujo]\n")
    c = load_contracts([], tmp_path)
    assert c.project_file == tmp_path / ".tracetui.yaml"
    assert c.sources == ["preset dopejar", "preset flujo", f"file {tmp_path / '.tracetui.yaml'}"]
    assert load_contracts(["baggage"], tmp_path).project_file is None


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "c.yaml",
            "operations:\n  altitude.transition: {required: from_level}\n",
            'c.yaml: operations."altitude.transition".required: expected a list, got a string',
        ),
        (
            "c.yaml",
            "baggage: {deny: [session_id], allwo: [run_id]}\n",
            "c.yaml: baggage: unknown key 'allwo' (expected one of: allow, deny)",
        ),
        (
            "c.yaml",
            "severity: {schema.duplicate_id: fatal}\n",
            "c.yaml: severity.\"schema.duplicate_id\": 'fatal' is not one of error, warning, info",
        ),
        ("c.yaml", "ignore: [schema.typo]\n", "c.yaml: ignore[0]: 'schema.typo' matches no rule"),
        ("c.yaml", "operations: [1, 2\n", "c.yaml:2: not valid YAML"),
        ("c.yaml", "- just\n- a list\n", "c.yaml: expected a mapping of contract keys"),
        ("c.yaml", "version: 2\n", "c.yaml: version: expected 1, got 2"),
        (
            "c.yaml",
            "spans:\n  - {required: [a], match: {}}\n",
            "c.yaml: spans[0].match: expected at least one of 'operation' or 'has'",
        ),
        (
            "c.yaml",
            "spans:\n  - {match: {operation: x}, requird: [a]}\n",
            "c.yaml: spans[0]: unknown key 'requird' (expected one of: match, name, required, "
            "events)",
        ),
        ("c.yaml", "extends: [dopejr]\n", "c.yaml: extends[0]: 'dopejr' is neither a preset"),
        ("c.yaml", "extends: [c.yaml]\n", "extends itself"),
        ("c.toml", "version = \n", "c.toml: not valid TOML"),
        ("c.json", '{"propagate": "run_id"}', "c.json: propagate: expected a list, got a string"),
        ("c.json", '{"propagate": ', "c.json:1: not valid JSON"),
        ("c.yaml", "quiet_period: -1\n", "c.yaml: quiet_period: expected a positive number"),
        ("c.yaml", "correlation: 'yes'\n", "c.yaml: correlation: expected true or false"),
    ],
)
def test_bad_contract_files_say_file_key_path_and_expectation(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ContractError) as err:
        load_contracts([str(tmp_path / name)], tmp_path)
    message = str(err.value).replace(str(tmp_path) + "/", "")
    assert expected in message


def test_unknown_preset_or_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"no such contract file .*not a preset: dopejar"):
        load_contracts(["nope"], tmp_path)
