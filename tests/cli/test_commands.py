"""The `kcnn` commands agree with each other: parsed in this process, on every backend."""

import argparse
import ast
import pathlib

import pytest

import kcnn
from kcnn.cli import _shared, build_parser, main
from kcnn.cli import demo as demo_command
from kcnn.cli import multihost as multihost_command

PACKAGE = pathlib.Path(kcnn.__file__).parent


def test_version_prints_kcnn_and_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"kcnn {kcnn.__version__}\n"


def test_every_command_is_registered():
    listed = build_parser().format_help()
    for command in ["list", "summary", "train", "evaluate", "predict", "convert", "export",
                    "explain", "tune", "finetune", "preview", "weights", "fetch", "demo",
                    "multihost"]:
        assert f"\n    {command} " in listed or f"\n    {command}\n" in listed, command


def test_train_lr_reaches_kcnn_train_as_learning_rate(monkeypatch, tmp_path, capsys):
    received = {}

    class History:
        model = kcnn.lenet5()
        epoch = [0]

    def train(model, data, **kwargs):
        received.update(kwargs, model=model, data=data)
        return History()

    monkeypatch.setattr(kcnn, "train", train)
    out = str(tmp_path / "run")
    assert main(["train", "lenet5", "--lr", "0.05", "--recipe", "alexnet2012",
                 "--out", out]) == 0
    assert received["model"] == "lenet5" and received["learning_rate"] == 0.05
    assert received["recipe"] == "alexnet2012" and received["out_dir"] == out
    assert main(["train", "lenet5", "--out", out]) == 0
    assert received["learning_rate"] is None  # the recipe's
    assert f"files in {out}" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["train"])
def test_an_unknown_recipe_is_refused_with_exit_2_and_the_choices(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "lenet5", "--recipe", "alexnet"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'alexnet'" in err
    assert all(name in err for name in kcnn.training.RECIPES)


# A command line with every required argument, for each command that writes files.
WRITERS = {
    "train": ["lenet5"],
    "explain": ["model.keras", "cat.png"],
    "finetune": ["model.keras", "--data", "images"],
    "preview": [],
    "tune": ["lenet5"],
    "demo": [],
    "multihost": ["--coordinator", "10.0.0.1:1234", "--num-processes", "2",
                  "--process-id", "0"],
}


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_out_names_the_output_of_every_command(command):
    args = build_parser().parse_args([command, *WRITERS[command], "--out", "somewhere"])
    assert args.out == "somewhere"


def test_directory_is_a_hidden_alias_of_tune_out(capsys):
    parser = build_parser()
    assert parser.parse_args(["tune", "lenet5", "--directory", "d"]).out == "d"
    assert parser.parse_args(["tune", "lenet5"]).out == "runs/tune"
    with pytest.raises(SystemExit):
        parser.parse_args(["tune", "--help"])
    assert "--directory" not in capsys.readouterr().out


@pytest.mark.parametrize("command", ["tune", "multihost"])
def test_model_is_positional_and_model_option_still_works(command, capsys):
    parser = build_parser()
    rest = [a for a in WRITERS[command] if a != "lenet5"]
    assert parser.parse_args([command, "resnet18", *rest]).model == "resnet18"
    assert parser.parse_args([command, *rest, "--model", "resnet18"]).model == "resnet18"
    assert parser.parse_args([command, "resnet18", *rest, "--model", "resnet18"]).model \
        == "resnet18"
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([command, "resnet18", *rest, "--model", "vgg11"])
    assert exit_.value.code == 2
    assert "MODEL given twice: 'resnet18' and 'vgg11'" in capsys.readouterr().err


def test_multihost_trains_lenet5_unless_told_otherwise():
    args = build_parser().parse_args(["multihost", *WRITERS["multihost"]])
    assert args.model == "lenet5" and args.out is None


@pytest.mark.parametrize("error", [ValueError, FileNotFoundError, TypeError])
def test_a_user_error_is_one_line_and_exit_2(error, capsys):
    def fail(args):
        raise error("the first line\n  and the second")

    parser = argparse.ArgumentParser()
    parser.set_defaults(run=fail, command="boom")
    assert _shared.run(parser, []) == 2
    assert capsys.readouterr().err == "kcnn boom: the first line and the second\n"


def test_a_missing_model_file_is_a_user_error(capsys):
    assert main(["evaluate", "missing.keras"]) == 2
    assert capsys.readouterr().err == (
        "kcnn evaluate: MODEL='missing.keras': no such file (expected a .keras file).\n")


def test_convert_refuses_an_output_that_is_no_weights_file(capsys):
    assert main(["convert", "resnet18", "r18.pth", "r18.h5"]) == 2
    assert capsys.readouterr().err.startswith(
        "kcnn convert: OUTPUT must end in '.weights.h5'; got 'r18.h5'.")


def test_the_standalone_programs_parse_like_their_commands(capsys):
    with pytest.raises(SystemExit) as exit_:
        demo_command.main(["--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage: python -m kcnn.demo [-h]")
    # process 5 of 2: refused before any network or device is touched
    assert multihost_command.main(["lenet5", "--coordinator", "127.0.0.1:1",
                                   "--num-processes", "2", "--process-id", "5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kcnn multihost: ") and len(err.splitlines()) == 1


def imports(path):
    """The modules a source file imports, at any depth (`from a import b`: a.b)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_library_leaves_the_command_line_to_kcnn_cli():
    for path in PACKAGE.rglob("*.py"):
        if PACKAGE / "cli" not in path.parents:
            assert not any(name.split(".")[0] == "argparse" for name in imports(path)), path
    for path in (PACKAGE / "weights").glob("*.py"):
        assert not any(name.startswith(("kcnn.registry", "kcnn.models"))
                       for name in imports(path)), path
    assert "kcnn" not in imports(PACKAGE / "training" / "multihost.py")
