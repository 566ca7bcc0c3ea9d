"""``equinas train`` (one network) and ``equinas evaluate`` (a checkpoint's accuracy and equivariance)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from equinas.cli import common
from equinas.cli.options import OptionNames, add_settings


def add_train(sub: argparse._SubParsersAction, with_options: bool) -> None:
    p = sub.add_parser(
        "train", help="train one network", description="Train one network and write checkpoints/logs."
    )
    if not with_options:
        return
    names = common.add_setting_groups(p)
    common.add_run_flags(p)
    p.add_argument(
        "--arch",
        default="D4",
        help="group for every layer (e.g. D4, C4, C1), 'mixed', a spec JSON file, or an architecture the "
        "paper found on the 8-layer backbone: paper:rotmnist-1..5, paper:galaxy10-1..5, paper:isic-1..5",
    )
    p.add_argument(
        "--constraint-relaxation",
        action="store_true",
        help="train with constraint relaxation (Pertigkiozoglou et al. 2024); ends exactly equivariant",
    )
    p.add_argument("--run-dir", help="write checkpoint.pt, log.jsonl, summary.json, spec.json here")
    p.set_defaults(func=cmd_train, option_names=names)


def add_evaluate(sub: argparse._SubParsersAction, with_options: bool) -> None:
    p = sub.add_parser("evaluate", help="accuracy and equivariance error of a checkpoint")
    if not with_options:
        return
    from equinas.data.settings import DataSettings

    names = OptionNames()
    p.add_argument("checkpoint", help="checkpoint.pt written by `equinas train`")
    add_settings(p, DataSettings, "data")
    names.add(DataSettings)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument(
        "--equivariance-batch", type=int, default=64, help="test images used for the equivariance error"
    )
    p.add_argument("--output", help="also write the JSON report here")
    p.set_defaults(func=cmd_evaluate, option_names=names)


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from equinas.atomic import atomic_write_text
    from equinas.models import build_network
    from equinas.models.backbone import named_spec
    from equinas.train import train
    from equinas.train.runtime import check_amp, resolve_device

    if args.run_dir is not None and not args.run_dir.strip():  # the rest is checked by the run's lock
        raise ValueError("--run-dir is empty (it would write into the current directory); name a folder")
    if args.tensorboard and args.run_dir is None:
        raise ValueError("--tensorboard needs --run-dir (the events go to <run-dir>/tensorboard/)")
    logger = common.tensorboard_logger(args, args.run_dir and Path(args.run_dir, "tensorboard"))
    config = common.train_config(args)
    check_amp(config, resolve_device(config.device))
    backbone = common.backbone_settings(args)
    data_choice = common.data_settings(args)
    data = data_choice.load()
    spec = named_spec(args.arch, backbone, data)
    spec.check_input_size(*data.image_size)
    spec.check_training_memory(*data.image_size, config.batch_size)
    if args.constraint_relaxation:
        spec = spec.with_kind("cr")
    torch.manual_seed(config.seed)
    model = build_network(spec)
    result = train(
        model,
        data,
        config,
        run_dir=args.run_dir,
        resume=args.resume,
        progress=not args.quiet,
        metadata={"spec": spec.to_dict(), "task": data_choice.task, "image_size": list(data.image_size)},
        callbacks=[logger] if logger else (),
    )
    if logger is not None:
        logger.write_final(result.metrics, result.history[-1]["step"])
    summary = {"task": data_choice.task, "spec": spec.groups_per_layer(), "params": model.num_parameters()}
    if args.run_dir:
        atomic_write_text(Path(args.run_dir, "spec.json"), spec.to_json() + "\n")
    print(common.json_text({**summary, **result.metrics}))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from equinas.atomic import atomic_write_text
    from equinas.files import output_file_problem
    from equinas.metrics import equivariance_summary
    from equinas.models import build_model
    from equinas.train import evaluate, load_checkpoint
    from equinas.train.checkpoint import check_task_fits, checkpoint_spec

    problem = output_file_problem(args.output) if args.output else None
    if problem:
        raise ValueError(f"--output: {problem}")
    checkpoint = load_checkpoint(args.checkpoint)
    model = build_model(checkpoint_spec(checkpoint, args.checkpoint))
    model.load_state_dict(checkpoint["model"])
    data = common.data_settings(args).load()
    check_task_fits(checkpoint, args.checkpoint, data)
    report: dict[str, Any] = {"checkpoint": str(args.checkpoint), "task": args.task}
    for split in ("val", "test"):
        report[split] = evaluate(model, getattr(data, split), args.batch_size)
    if hasattr(model, "ambient"):
        report["equivariance"] = equivariance_summary(model, data.test.batch(slice(args.equivariance_batch)))
    text = common.json_text(report)
    if args.output:
        atomic_write_text(args.output, text + "\n")
    print(text)
    return 0
