"""One source for the options: every TrainConfig field is a `train` flag, an estimator parameter and a `fit` keyword,
with one help text; messages name only options that exist, in the words of the front door that shows them."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import neuraltab
from neuraltab.cli import app
from neuraltab.cli.progress import FLAG_NAMES
from neuraltab.config import TrainConfig
from neuraltab.errors import ConfigError, UserError, option, render

SRC = Path(neuraltab.__file__).parent
FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
# train's own options: where the data and the model go, and how the command reports
TRAIN_RUN_OPTIONS = {"data", "target", "output", "force", "encoding", "decimal", "dayfirst", "checkpoint_every", "resume",
                     "nproc", "as_json", "quiet", "report"}
# the estimators train on every row they are given, with the task their class states
NOT_ESTIMATOR_PARAMETERS = {"task", "test_size"}
# packages that are commands' own front ends: their messages name their own command's flags
FRONT_DOORS = {"cli", "serve"}


def _commands() -> dict:
    return typer.main.get_command(app).commands


def _flags() -> set[str]:
    """Every flag some command takes (and the app's own)."""
    group = typer.main.get_command(app)
    flags = {o for p in group.params for o in (*p.opts, *p.secondary_opts)}
    for command in group.commands.values():
        flags |= {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}
    return flags


def test_every_config_field_is_a_train_flag_with_its_help_and_nothing_else_is():
    params = {p.name: p for p in _commands()["train"].params}
    assert set(params) == set(FIELDS) | TRAIN_RUN_OPTIONS
    for name, field in FIELDS.items():
        assert params[name].help.startswith(field.metadata["help"]), name
        assert "--" + name.replace("_", "-") in params[name].opts


@pytest.mark.parametrize("estimator", [neuraltab.NeuralTabClassifier, neuraltab.NeuralTabRegressor])
def test_every_config_field_is_an_estimator_parameter_with_the_same_default_and_nothing_else_is(estimator):
    params = inspect.signature(estimator.__init__).parameters
    names = set(params) - {"self"}
    assert names == set(FIELDS) - NOT_ESTIMATOR_PARAMETERS
    for name in names:
        assert params[name].default == FIELDS[name].default, name


def test_fit_takes_every_option_and_documents_it():
    for name, field in FIELDS.items():
        assert f"``{name}``" in neuraltab.fit.__doc__ and field.metadata["help"] in neuraltab.fit.__doc__
    with pytest.raises(ConfigError, match="did you mean 'max_categories'"):
        neuraltab.fit("unused.csv", target="y", max_categorie=3)


def test_every_option_is_given_a_default_in_the_help_of_every_command():
    runner = CliRunner()
    for name, command in _commands().items():
        for param in command.params:
            if param.name == "help" or param.required:
                continue
            shown = param.show_default
            assert shown not in (None, False), f"{name} {param.opts}: no default in --help"
    out = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output
    assert "[default: 0.3]" in out and "[default: (from the number of training rows)]" in out


def test_the_version_flag():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"neuraltab {neuraltab.__version__}"


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def _docstrings(path: Path) -> set[int]:
    tree = ast.parse(path.read_text())
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                lines.add(first.lineno)
    return lines


def test_library_messages_name_no_flag_the_front_doors_render_option_references_instead():
    """Library code speaks to Python users, servers and pages too: a literal --flag there would be wrong for all of
    them. The command line and the server's operator settings are front doors that name their own flags."""
    found = []
    for path in SRC.rglob("*.py"):
        if set(path.relative_to(SRC).parts) & FRONT_DOORS or path.name == "errors.py":  # errors.render writes flags
            continue
        docs = _docstrings(path)
        for line, text in _string_constants(path):
            if line not in docs and re.search(r"(^|[\s(])--[a-z]", text):
                found.append(f"{path.relative_to(SRC)}:{line}: {text[:60]!r}")
    assert not found, found


def test_every_option_a_message_refers_to_is_a_flag_some_command_has():
    flags, referenced = _flags(), set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "option" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                referenced.add(node.args[0].value)
    assert {"task", "lr", "decimal", "force", "output", "id_column", "max_categories"} <= referenced  # the scan works
    missing = {name for name in referenced
               if FLAG_NAMES.get(name, "--" + name.replace("_", "-")) not in flags}
    assert not missing, f"messages refer to options no command has: {sorted(missing)}"
    # and the front doors' own words: every --flag in their strings is a flag some command has
    for path in [p for door in FRONT_DOORS for p in (SRC / door).rglob("*.py")]:
        for line, text in _string_constants(path):
            for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z](?![\w-])", text):
                assert flag in flags or flag == "--help", f"{path.relative_to(SRC)}:{line} names {flag}"


def test_an_error_renders_its_option_in_each_front_doors_words():
    exc = ConfigError(f"target 't' has 3 classes; use {option('task', 'multiclass')} or drop {option('drop', ['a, b'])}")
    assert str(exc) == "target 't' has 3 classes; use task='multiclass' or drop drop=['a, b']"
    assert exc.render("cli") == "target 't' has 3 classes; use --task multiclass or drop --drop 'a, b'"
    assert exc.render("json") == 'target \'t\' has 3 classes; use "task": "multiclass" or drop "drop": ["a, b"]'
    assert exc.option == "task" and isinstance(exc, UserError)
    assert render(f"{option('early_stopping', False)}", "cli") == "--no-early-stopping"
    assert render(f"{option('id_column')}", "cli", flags=FLAG_NAMES) == "--id"


def test_the_cli_shows_flags_and_python_shows_keywords_for_the_same_error(tmp_path):
    data = tmp_path / "t.csv"
    data.write_text("a,y\n" + "".join(f"{i},{i % 3}\n" for i in range(30)))
    result = CliRunner().invoke(app, ["train", str(data), "--target", "y", "--task", "binary"])
    assert result.exit_code == 2
    assert "--task binary but target 'y' has 3 classes; use --task multiclass" in result.output
    with pytest.raises(UserError, match=r"task='binary' but target 'y' has 3 classes; use task='multiclass'") as info:
        neuraltab.fit(str(data), target="y", task="binary")
    assert "--" not in str(info.value) and info.value.option == "task"
