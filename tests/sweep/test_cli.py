"""The sweep command line without training: axes, trial directories, reruns, launchers' output."""
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

from paperlab.errors import ConfigError
from paperlab.sweep import cli, launch
from paperlab.sweep import trials as trials_lib

TINY = str(pathlib.Path(__file__).resolve().parent / "tiny_config.py")


def sweep_cli(*args):
  return cli.main(["--config", TINY, *args])


def printed_commands(out: str) -> list[list[str]]:
  return [shlex.split(line) for line in out.splitlines() if " -m paperlab.run " in line]


def test_axes_take_the_product_typed_by_the_config_fields(tmp_path, capsys):
  assert sweep_cli("--workdir", str(tmp_path), "--no_config_sweep", "--axis", "optim.lr=0.01,0.03",
                   "--axis", "seed=0,1", "--axis", "log.plot=true", "--launcher", "print") == 0
  expected = [{"optim.lr": lr, "seed": s, "log.plot": True} for lr in (0.01, 0.03) for s in (0, 1)]
  stored = json.loads((tmp_path / "sweep.json").read_text())
  assert stored["trials"] == expected and stored["config"] == TINY
  assert all(type(t["seed"]) is int and type(t["optim.lr"]) is float for t in stored["trials"])
  for i, overrides in enumerate(expected):
    assert json.loads((tmp_path / f"trial_{i:03d}" / "overrides.json").read_text()) == overrides
  commands = printed_commands(capsys.readouterr().out)
  assert len(commands) == 4
  assert commands[3][commands[3].index("--workdir") + 1] == str(tmp_path / "trial_003")
  assert {"--config.optim.lr=0.03", "--config.seed=1", "--config.log.plot=true"} <= set(commands[3])


def test_axis_on_a_placeholder_takes_its_declared_type(tmp_path, capsys):
  sweep_cli("--workdir", str(tmp_path), "--no_config_sweep", "--axis", "optim.decay_steps=30,40",
            "--axis", "optim.clip_norm=1", "--launcher", "print")
  trials = json.loads((tmp_path / "sweep.json").read_text())["trials"]
  assert trials == [{"optim.decay_steps": 30, "optim.clip_norm": 1.0}, {"optim.decay_steps": 40, "optim.clip_norm": 1.0}]
  assert type(trials[0]["optim.decay_steps"]) is int and type(trials[0]["optim.clip_norm"]) is float
  capsys.readouterr()


def test_config_sweep_times_cli_axes_first_varies_slowest(tmp_path, capsys):
  assert sweep_cli("--workdir", str(tmp_path), "--axis", "model.width=8,32", "--launcher", "print") == 0
  trials = json.loads((tmp_path / "sweep.json").read_text())["trials"]
  assert len(trials) == 8
  assert trials[:2] == [{"optim.lr": 2.0**-9, "seed": 0, "model.width": 8},
                        {"optim.lr": 2.0**-9, "seed": 0, "model.width": 32}]
  capsys.readouterr()


def test_printed_commands_parse_back_to_the_same_values(tmp_path, capsys):
  # The exact parser paperlab.run uses: every value must survive format_value -> config_flags.
  values = {"optim.lr": 1.2345678901234567e-05, "optim.clip_norm": 0.5, "seed": 7, "log.plot": False,
            "optim.schedule": "cosine", "optim.grad_noise_eta": 0.01}
  axes = [f"{k}={launch.format_value(v)}" for k, v in values.items()]
  sweep_cli("--workdir", str(tmp_path), "--no_config_sweep", *sum((["--axis", a] for a in axes), []),
            "--launcher", "print")
  (command,) = printed_commands(capsys.readouterr().out)
  workdir = command.index("--workdir")
  args = command[command.index("--config"):workdir] + command[workdir + 2:]
  parse = ("import json, sys; from absl import flags; from ml_collections import config_flags; "
           "c = config_flags.DEFINE_config_file('config', None, '', lock_config=True); flags.FLAGS(sys.argv); "
           f"print(json.dumps({{k: eval('c.value.' + k) for k in {list(values)!r}}}))")
  result = subprocess.run([sys.executable, "-c", parse, *args], capture_output=True, text=True, check=True)
  parsed = json.loads(result.stdout.strip().splitlines()[-1])
  assert parsed == values
  assert all(type(parsed[k]) is type(v) for k, v in values.items())


@pytest.mark.parametrize("axis, message", [
    ("optim.lrr=1,2", r"unknown config field 'optim.lrr'; valid fields of optim: .*\blr\b"),
    ("seed=0,x", r"--axis seed: expected an integer, got 'x'"),
    ("optim.lr", r"expected key=v1,v2"),
    ("optim=1", r"not a leaf|unknown config field"),
])
def test_bad_axis_is_one_line_exit_2(tmp_path, capsys, axis, message):
  with pytest.raises(SystemExit) as exit_info:
    sweep_cli("--workdir", str(tmp_path), "--axis", axis, "--launcher", "print")
  assert exit_info.value.code == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and err.startswith("paperlab.sweep: error: ") and re.search(message, err), err
  assert not (tmp_path / "sweep.json").exists()


def test_bad_override_value_is_caught_before_anything_runs(tmp_path, capsys):
  with pytest.raises(SystemExit):
    sweep_cli("--workdir", str(tmp_path), "--axis", "optim.schedule=cosine,1.5e-3", "--axis", "total_steps=0",
              "--launcher", "print")
  assert "total_steps must be a positive integer" in capsys.readouterr().err
  assert not (tmp_path / "sweep.json").exists()


def test_trial_range_selects_and_is_checked(tmp_path, capsys):
  assert sweep_cli("--workdir", str(tmp_path), "--trials", "1:3", "--launcher", "print") == 0
  commands = printed_commands(capsys.readouterr().out)
  assert [c[c.index("--workdir") + 1] for c in commands] == [str(tmp_path / "trial_001"), str(tmp_path / "trial_002")]
  assert trials_lib.parse_trial_range("2:", 4) == range(2, 4)
  assert trials_lib.parse_trial_range(":1", 4) == range(0, 1)
  assert trials_lib.parse_trial_range("3", 4) == range(3, 4)
  with pytest.raises(SystemExit):
    sweep_cli("--workdir", str(tmp_path), "--trials", "2:9", "--launcher", "print")
  assert "the sweep has trials 0..3" in capsys.readouterr().err


def test_rerun_skips_finished_trials_and_refuses_a_changed_sweep(tmp_path, capsys):
  sweep_cli("--workdir", str(tmp_path), "--launcher", "print")
  trials_lib.write_json(tmp_path / "trial_000" / "meta.json", {"status": "done"})
  trials_lib.write_json(tmp_path / "trial_002" / "meta.json", {"status": "diverged"})
  trials_lib.write_json(tmp_path / "trial_003" / "meta.json", {"status": "preempted"})
  capsys.readouterr()
  sweep_cli("--workdir", str(tmp_path), "--launcher", "print")
  out = capsys.readouterr().out
  assert "2 already finished, skipped; 2 to run" in out
  assert [c[c.index("--workdir") + 1][-3:] for c in printed_commands(out)] == ["001", "003"]
  # Adding trials at the end is fine (the sweep grows); changing or dropping existing ones is not.
  old = json.loads((tmp_path / "sweep.json").read_text())["trials"]
  grown = trials_lib.prepare(tmp_path, TINY, old + [{"optim.lr": 0.5, "seed": 0}])
  assert len(grown) == 5 and grown[4].workdir == tmp_path / "trial_004" and grown[0].status == "done"
  with pytest.raises(ConfigError, match="trials may only be added at the end"):
    trials_lib.prepare(tmp_path, TINY, old[:2])
  with pytest.raises(SystemExit):
    sweep_cli("--workdir", str(tmp_path), "--axis", "model.width=16", "--launcher", "print")
  assert "holds a different sweep: trial 0" in capsys.readouterr().err
  assert json.loads((tmp_path / "trial_000" / "meta.json").read_text()) == {"status": "done"}


def test_config_arg_override_picks_the_config_variant(tmp_path):
  assert trials_lib.trial_config_spec("configs/x.py:a=1", {":arg": "b=2", "seed": 0}) == "configs/x.py:b=2"
  assert trials_lib.trial_config_spec("configs/x.py:a=1", {"seed": 0}) == "configs/x.py:a=1"
  trial = trials_lib.Trial(0, {":arg": "b=2", "seed": 3}, tmp_path)
  cmd = launch.trial_command("configs/x.py", trial, python="python")
  assert cmd[cmd.index("--config") + 1] == "configs/x.py:b=2" and "--config.seed=3" in cmd
  assert not any(":arg" in part for part in cmd)


def _slurm_script(tmp_path, capsys, *extra):
  assert sweep_cli("--workdir", str(tmp_path), "--launcher", "slurm", "--parallel", "2",
                   "--sbatch", "partition=gpu", "--sbatch=--gres=gpu:1", *extra) == 0
  assert f"sbatch {tmp_path / 'sweep.sbatch'}" in capsys.readouterr().out
  return (tmp_path / "sweep.sbatch").read_text()


def test_slurm_script_structure(tmp_path, capsys):
  text = _slurm_script(tmp_path, capsys)
  lines = text.splitlines()
  assert lines[0] == "#!/bin/bash"
  sbatch = [line for line in lines if line.startswith("#SBATCH")]
  assert "#SBATCH --array=0,1,2,3%2" in sbatch
  assert "#SBATCH --partition=gpu" in sbatch and "#SBATCH --gres=gpu:1" in sbatch
  assert f"#SBATCH --output={tmp_path.absolute()}/slurm/%A_%a.out" in sbatch and (tmp_path / "slurm").is_dir()
  assert lines.index(sbatch[-1]) < lines.index("set -uo pipefail")  # sbatch reads directives before any command
  arms = re.findall(r"^  (\d+)\) trial=(\S+)\n     cmd=\((.*)\) ;;$", text, re.M)
  assert [int(a[0]) for a in arms] == [0, 1, 2, 3]
  for index, workdir, cmd in arms:
    assert workdir == str(tmp_path.absolute() / f"trial_{int(index):03d}")
    parts = shlex.split(cmd)
    assert parts[1:3] == ["-m", "paperlab.run"] and parts[parts.index("--workdir") + 1] == workdir
  assert "--record_exit" in text
  assert subprocess.run(["bash", "-n", str(tmp_path / "sweep.sbatch")]).returncode == 0
  # Only unfinished trials go into a new script.
  trials_lib.write_json(tmp_path / "trial_001" / "meta.json", {"status": "done"})
  assert "#SBATCH --array=0,2,3%2" in _slurm_script(tmp_path, capsys)


def test_slurm_array_task_runs_its_trial_then_records_the_exit(tmp_path):
  # Replace python by a stub that logs its arguments: the script's dispatch is then checked by running it.
  stub = tmp_path / "python_stub"
  stub.write_text('#!/bin/bash\necho "$@" >> "$STUB_LOG"\nexit "${STUB_RC:-0}"\n')
  stub.chmod(0o755)
  trials = trials_lib.prepare(tmp_path / "sweep", TINY, [{"seed": s} for s in range(3)])
  script = tmp_path / "job.sh"
  script.write_text(launch.slurm_script(TINY, trials, tmp_path / "sweep", parallel=1, python=str(stub)))
  log = tmp_path / "stub.log"
  env = {**os.environ, "STUB_LOG": str(log), "SLURM_ARRAY_TASK_ID": "2", "STUB_RC": "3"}
  result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
  assert result.returncode == 3
  run_line, record_line = log.read_text().splitlines()
  assert run_line.startswith("-m paperlab.run --config") and f"{tmp_path / 'sweep' / 'trial_002'}" in run_line
  assert "--config.seed=2" in run_line
  assert record_line == f"-m paperlab.sweep --record_exit {tmp_path / 'sweep' / 'trial_002'} 3"
  env["SLURM_ARRAY_TASK_ID"] = "7"
  assert subprocess.run(["bash", str(script)], env=env, capture_output=True).returncode == 2


def test_record_exit_statuses(tmp_path):
  failed = tmp_path / "failed"
  failed.mkdir()
  (failed / "log.txt").write_text("=== cmd\nsome output\npaperlab.run: error: model.width=0 must be an int > 0\n")
  assert cli.main(["--record_exit", str(failed), "2"]) == 0
  meta = trials_lib.read_meta(failed)
  assert meta["status"] == "failed" and meta["exit_code"] == 2
  assert meta["error"] == "paperlab.run: error: model.width=0 must be an int > 0"
  crashed = tmp_path / "crashed"
  crashed.mkdir()
  trials_lib.write_json(crashed / "meta.json", {"status": "running", "start_time": "2026-01-01T00:00:00+00:00"})
  assert launch.record_exit(crashed, -9, "Killed") == "failed"
  assert trials_lib.read_meta(crashed)["start_time"] == "2026-01-01T00:00:00+00:00"
  for status, code in (("done", 0), ("preempted", 0), ("diverged", 3)):
    trials_lib.write_json(tmp_path / "meta.json", {"status": status})
    assert launch.record_exit(tmp_path, code) == status
  assert launch.record_exit(tmp_path / "new", 3) == "diverged"


def test_progress_line_counts():
  line = launch.ProgressLine(total=5)
  text = line.text({"done": 2, "running": 1, "failed": 1, "diverged": 1})
  assert text.startswith("sweep: 5 trials | 2 done, 1 running, 1 failed, 1 diverged | 0:00:0")


def test_missing_config_or_workdir(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["--workdir", "x"])
  assert exit_info.value.code == 2 and "--config and --workdir are required" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    cli.main(["--config", "configs/nope.py", "--workdir", "x"])
  assert "config file not found: configs/nope.py" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    cli.main(["--config", TINY, "--workdir", "x", "--vectorize", "--launcher", "slurm"])
  assert "use it with --launcher local" in capsys.readouterr().err


def test_python_m_entry_point_help():
  result = subprocess.run([sys.executable, "-m", "paperlab.sweep", "--help"], capture_output=True, text=True)
  assert result.returncode == 0 and "--vectorize" in result.stdout and "--axis" in result.stdout
