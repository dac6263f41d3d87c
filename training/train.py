"""Train the seq2seq restorer on (spun, original) pairs; CPU, one GPU, or several (torchrun), resumable.

    python -m training.train --pairs data/pairs --tokenizer data/tokenizer --out-dir runs/small --max-steps 3000
    torchrun --nproc-per-node 4 -m training.train ...          # several GPUs (DDP)

The model is a Hugging Face T5 (pre-norm) built from a preset in `models/presets/`, or a pretrained seq2seq checkpoint
(`--init-from PATH_OR_HUB_NAME`). `out_dir/checkpoint/` holds the latest training state (weights, optimizer,
scheduler, data position, RNG) and is replaced atomically every `save_every` steps; a killed run restarted with the
same command resumes there. `out_dir/model/` is the self-describing checkpoint that
`Seq2SeqRestorer.from_pretrained` loads.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from normalizer.device import resolve_device
from normalizer.edits import SPECIAL_SYMBOLS
from normalizer.engines.seq2seq import InferenceConfig, Seq2SeqRestorer
from normalizer.tokenizer import HfTokenizer, SpmTokenizer, load_tokenizer
from training.encoded import aux_labels, load_encoded

logger = logging.getLogger(__name__)

PRESETS = Path(__file__).resolve().parent.parent / "models" / "presets"


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved beside every checkpoint."""

    pairs: str = "data/pairs"
    """Folder made by `training.pairs` (splits `train`, `dev`)."""
    tokenizer: str = "data/tokenizer"
    """Folder with `spiece.model` (ignored with `init_from`, which brings its own tokenizer)."""
    out_dir: str = "runs/default"
    """Where checkpoints, logs and the final model go."""
    preset: str = "small"
    """Architecture: a name in models/presets/ or a JSON file of T5Config fields."""
    init_from: str | None = None
    """Start from a pretrained seq2seq checkpoint (path or hub name) instead of a preset."""
    max_steps: int = 3000
    """Optimizer steps."""
    max_minutes: float = 0.0
    """Stop after this many minutes of training (0 = no limit), saving a checkpoint first."""
    time_schedule: bool = False
    """Decay the learning rate over `max_minutes` of training instead of over `max_steps` (for a run whose step rate
    is not known in advance, such as a lease on a GPU machine); training still stops at whichever comes first."""
    batch_size: int = 64
    """Pairs per step (per process)."""
    optimizer: str = "adamw"
    """`adamw`, or `adafactor` (updates scaled to each weight's size, as T5 was designed for: with AdamW at a high
    rate, T5's unscaled attention logits grow until attention saturates and learning stalls)."""
    lr: float = 1e-3
    """Peak learning rate."""
    warmup_steps: int = 200
    """Linear warm-up steps."""
    min_lr_ratio: float = 0.1
    """Cosine decay ends at lr * min_lr_ratio."""
    weight_decay: float = 0.01
    """AdamW weight decay (not on norms and biases)."""
    clip_norm: float = 1.0
    """Gradient clipping (global norm)."""
    aux_weight: float = 0.0
    """Weight of the encoder auxiliary loss: at every input position, predict the original token there (through the
    tied output layer), so the encoder learns which words are spun and what they were from every token, not only
    from the few the decoder writes. 0 turns it off."""
    clean_share: float = 0.25
    """Keep unspun pairs (empty target) up to this share of the training set (0.25 ≈ the natural mix)."""
    seed: int = 0
    """Seed for initialisation and data order."""
    save_every: int = 200
    """Steps between checkpoints."""
    eval_every: int = 500
    """Steps between dev evaluations (restoration metrics on `eval_size` dev pairs); 0 = only at the end."""
    eval_size: int = 300
    """Dev pairs used for evaluation during training."""
    log_every: int = 20
    """Steps between log lines."""
    max_source_tokens: int = 128
    """Longer training inputs are dropped (the normalizer cuts long sentences at inference)."""
    max_target_tokens: int = 128
    """Longer training targets are dropped."""
    device: str = "auto"
    """`auto`, `cpu`, `cuda`, `cuda:1`, ..."""
    precision: str = "auto"
    """`fp32`, `bf16`, `fp16`; `auto` = bf16 on a GPU that supports it, else fp32."""
    threads: int = 0
    """CPU threads for torch (0 = torch's default)."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self):
        if self.optimizer not in ("adamw", "adafactor"):
            raise ValueError(f"optimizer must be 'adamw' or 'adafactor', got {self.optimizer!r}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        for name in ("max_steps", "batch_size", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.time_schedule and self.max_minutes <= 0:
            raise ValueError("time_schedule needs max_minutes > 0")
        if not 0.0 <= self.clean_share <= 1.0:
            raise ValueError(f"clean_share must lie in [0, 1], got {self.clean_share}")

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return cls(**data)


def load_preset(preset: str) -> dict:
    """T5Config fields from models/presets/NAME.json or a JSON file path (keys starting with _ are comments)."""
    path = Path(preset) if preset.endswith(".json") else PRESETS / f"{preset}.json"
    if not path.exists():
        raise FileNotFoundError(
            f"no preset {preset!r} ({path}); presets: {sorted(p.stem for p in PRESETS.glob('*.json'))}"
        )
    return {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}


def build_model(config: TrainConfig):
    """The model and tokenizer to train: a fresh T5 from a preset, or a pretrained checkpoint."""
    from transformers import AutoModelForSeq2SeqLM, T5Config, T5ForConditionalGeneration

    if config.init_from:
        tokenizer = load_tokenizer(config.init_from)
        if isinstance(tokenizer, HfTokenizer):
            # The edit-format symbols must be single tokens.
            tokenizer.tok.add_tokens(list(SPECIAL_SYMBOLS), special_tokens=False)
            tokenizer.vocab_size = len(tokenizer.tok)
        # fp32 master weights whatever the checkpoint stores (shipped models are fp16; AdamW on fp16 weights loses
        # every small update).
        model = AutoModelForSeq2SeqLM.from_pretrained(config.init_from, use_safetensors=True, dtype=torch.float32)
        if model.get_input_embeddings().num_embeddings < tokenizer.vocab_size:
            model.resize_token_embeddings(tokenizer.vocab_size)
        return model, tokenizer
    tokenizer = SpmTokenizer(Path(config.tokenizer) / "spiece.model")
    t5 = T5Config(
        vocab_size=tokenizer.vocab_size,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        **load_preset(config.preset),
    )
    torch.manual_seed(config.seed)
    model = T5ForConditionalGeneration(t5)
    if getattr(t5, "untied_output_layer", False):
        untie_output_layer(model)
    return model, tokenizer


def untie_output_layer(model) -> None:
    """Give the model an output layer of its own, initialised from the shared embeddings.

    transformers 5 always ties T5's output layer to its input embeddings; this is how the untied variant is measured
    (preset key `untied_output_layer`). Saved checkpoints then hold both matrices, and `from_pretrained` keeps them
    apart because their values differ.
    """
    model.lm_head.weight = torch.nn.Parameter(model.shared.weight.detach().clone())
    model.all_tied_weights_keys.pop("lm_head.weight", None)


def encode_split(tokenizer, rows: dict, config: TrainConfig) -> list[tuple[list[int], list[int], list[int]]]:
    """(source ids, target ids, auxiliary labels) per pair; over-long pairs dropped.

    The auxiliary labels give, for each source token, the token of the original sentence aligned to it (difflib over
    token ids): its own id where the text is unchanged, the first token of the replacement where a swapped run
    starts, and -100 (ignored) inside a swapped run.
    """
    sources = tokenizer.encode_batch(rows["spun"])
    targets = tokenizer.encode_batch(rows["target"])
    originals = tokenizer.encode_batch(rows["original"])
    out = []
    for s, t, o in zip(sources, targets, originals):
        if len(s) <= config.max_source_tokens and len(t) <= config.max_target_tokens:
            out.append((s, t, aux_labels(s, o) if config.aux_weight else []))
    return out


def keep_with_clean_cap(clean: list[bool], clean_share: float, seed: int) -> list[int]:
    """Indices of all spun pairs plus clean pairs (empty target: nothing was swapped) up to `clean_share` of the
    whole, in their original order."""
    rng = random.Random(seed)
    clean_idx = [i for i, c in enumerate(clean) if c]
    spun_idx = [i for i, c in enumerate(clean) if not c]
    max_clean = int(clean_share / (1 - clean_share) * len(spun_idx)) if clean_share < 1 else len(clean_idx)
    rng.shuffle(clean_idx)
    return sorted(spun_idx + clean_idx[:max_clean])


def load_data(config: TrainConfig, tokenizer) -> tuple[list[tuple[list[int], list[int], list[int]]], dict]:
    """Encoded training pairs (see `encode_split`) and `eval_size` dev pairs (texts), from a pairs folder or from a
    pre-encoded `.npz` file (`training.encoded`)."""
    if config.pairs.endswith(".npz"):
        tokenizer_dir = Path(config.init_from) if config.init_from else Path(config.tokenizer)
        if not (tokenizer_dir / "spiece.model").exists():
            raise ValueError(
                f"{config.pairs} holds SentencePiece ids: {tokenizer_dir} has no spiece.model to check them"
            )
        cols, dev_rows = load_encoded(config.pairs, tokenizer_dir, bool(config.aux_weight))
        keep = keep_with_clean_cap(cols["clean"], config.clean_share, config.seed)
        data = [
            (cols["source"][i], cols["target"][i], cols["aux"][i])
            for i in keep
            if len(cols["source"][i]) <= config.max_source_tokens and len(cols["target"][i]) <= config.max_target_tokens
        ]
    else:
        from training.pairs import load_pairs

        ds = load_pairs(config.pairs, "train")
        keep = keep_with_clean_cap([not t for t in ds["target"]], config.clean_share, config.seed)
        data = encode_split(tokenizer, ds.select(keep).to_dict(), config)
        dev_ds = load_pairs(config.pairs, "dev")
        dev_rows = {"spun": list(dev_ds["spun"]), "original": list(dev_ds["original"])}
    picked = sorted(
        random.Random(config.seed).sample(range(len(dev_rows["spun"])), min(config.eval_size, len(dev_rows["spun"])))
    )
    dev = {k: [dev_rows[k][i] for i in picked] for k in ("spun", "original")}
    return data, dev


def batches_for_epoch(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Length-bucketed batches: shuffle, sort within chunks of 50 batches by length, shuffle the batches."""
    rng = random.Random(seed * 7919 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * 50
    batches = []
    for lo in range(0, len(order), chunk):
        part = sorted(order[lo : lo + chunk], key=lambda i: lengths[i])
        batches += [part[k : k + batch_size] for k in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(pairs: list[tuple[list[int], list[int], list[int]]], pad: int) -> dict[str, torch.Tensor]:
    """Dynamic padding: input_ids/attention_mask (B, S), labels (B, T) and aux_labels (B, S), -100 at padding."""
    s_len = max(len(p[0]) for p in pairs)
    t_len = max(len(p[1]) for p in pairs)
    input_ids = torch.full((len(pairs), s_len), pad, dtype=torch.long)
    labels = torch.full((len(pairs), t_len), -100, dtype=torch.long)
    aux = torch.full((len(pairs), s_len), -100, dtype=torch.long)
    for k, (s, t, a) in enumerate(pairs):
        input_ids[k, : len(s)] = torch.tensor(s)
        labels[k, : len(t)] = torch.tensor(t)
        if a:
            aux[k, : len(a)] = torch.tensor(a)
    return {"input_ids": input_ids, "attention_mask": (input_ids != pad).long(), "labels": labels, "aux_labels": aux}


def compute_loss(model, train_model, batch: dict, aux_weight: float, keep_unchanged: float = 0.15) -> torch.Tensor:
    """Seq2seq cross-entropy, plus `aux_weight` times the encoder auxiliary loss (see TrainConfig.aux_weight).

    The auxiliary loss is taken at every swapped position and at a random `keep_unchanged` share of the others
    (predicting a token's own id is easy and would otherwise cost most of the output-layer compute).
    """
    aux_labels = batch.pop("aux_labels")
    out = train_model(**batch)
    if not aux_weight:
        return out.loss
    swapped = (aux_labels != batch["input_ids"]) & (aux_labels != -100)  # (B, S)
    sampled = (torch.rand(aux_labels.shape, device=aux_labels.device) < keep_unchanged) & (aux_labels != -100)
    select = swapped | sampled
    if not select.any():
        return out.loss
    hidden = out.encoder_last_hidden_state[select]  # (N, d)
    # As T5 scales before its output layer (transformers 5 names the switch scale_decoder_outputs; earlier versions
    # scale whenever the embeddings are tied).
    if getattr(model.config, "scale_decoder_outputs", getattr(model.config, "tie_word_embeddings", False)):
        hidden = hidden * model.config.d_model**-0.5
    logits = model.get_output_embeddings()(hidden)  # (N, V)
    aux = torch.nn.functional.cross_entropy(logits.float(), aux_labels[select])
    return out.loss + aux_weight * aux


def lr_lambda(config: TrainConfig, clock: dict | None = None):
    """Warm-up then cosine decay; with `time_schedule`, the decay follows `clock["seconds"]` (training time so far)
    against `max_minutes`."""

    def f(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = min(1.0, (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps))
        if config.time_schedule and clock is not None:
            progress = min(1.0, clock["seconds"] / (config.max_minutes * 60))
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def make_optimizer(model, config: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(groups, lr=config.lr, scale_parameter=True, relative_step=False, warmup_init=False)
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.98), eps=1e-8)


def save_checkpoint(out_dir: Path, model, tokenizer, optimizer, scheduler, state: dict, config: TrainConfig) -> None:
    """Write the training state to out_dir/checkpoint atomically (tmp folder, then rename)."""
    final, tmp, old = out_dir / "checkpoint", out_dir / "checkpoint.tmp", out_dir / "checkpoint.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save(tmp)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save({"torch": torch.get_rng_state(), "python": random.getstate()}, tmp / "rng.pt")
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2))
    (tmp / "training_config.json").write_text(json.dumps(asdict(config), indent=2))
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(out_dir: Path) -> Path | None:
    """The latest complete checkpoint (a crash between renames leaves it as checkpoint.old)."""
    for name in ("checkpoint", "checkpoint.old"):
        if (out_dir / name / "trainer_state.json").exists():
            return out_dir / name
    return None


def export_model(directory: Path, model, tokenizer, config: TrainConfig, metrics: list[dict]) -> None:
    """Write the self-describing checkpoint: weights, configs, tokenizer, inference config, training config, metrics."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save(directory)
    InferenceConfig().save(directory)
    (directory / "training_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    (directory / "metrics.json").write_text(json.dumps({"dev_during_training": metrics}, indent=2) + "\n")


def evaluate_dev(model, tokenizer, dev: dict, config: TrainConfig, device) -> dict:
    """Restoration metrics on dev pairs, through the same restorer users get."""
    from normalizer.metrics import evaluate

    normalizer = Seq2SeqRestorer(model, tokenizer, InferenceConfig(), device=device)
    was_training = model.training
    start = time.time()
    outputs = normalizer.normalize_batch(dev["spun"], batch_size=64)
    model.train(was_training)
    result = evaluate(dev["spun"], outputs, dev["original"], sacrebleu_scores=False)
    result["eval_seconds"] = time.time() - start
    return result


def train(config: TrainConfig) -> Path:
    """Run (or resume) training; returns the exported model directory."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(config.device)
    if distributed:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if config.threads:
        torch.set_num_threads(config.threads)
    precision = config.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, tokenizer = build_model(config)
    data, dev = load_data(config, tokenizer)
    logger.info(
        "%d training pairs, %d dev pairs, %d parameters",
        len(data),
        len(dev["spun"]),
        sum(p.numel() for p in model.parameters()),
    )

    model.to(device)
    optimizer = make_optimizer(model, config)
    clock = {"seconds": 0.0}
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, clock))
    scaler = torch.amp.GradScaler(enabled=precision == "fp16")
    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "train_seconds": 0.0, "metrics": []}
    ckpt = find_checkpoint(out_dir)
    if ckpt is not None:
        from safetensors.torch import load_file

        weights = load_file(ckpt / "model.safetensors", device=str(device))
        model.load_state_dict(weights, strict=False)  # tied embeddings are saved once
        optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=device, weights_only=True))
        scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=True))
        rng = torch.load(ckpt / "rng.pt", weights_only=True)
        torch.set_rng_state(rng["torch"])
        random.setstate(rng["python"])
        state = json.loads((ckpt / "trainer_state.json").read_text())
        logger.info("resumed from %s at step %d", ckpt, state["step"])
    train_model = model
    if distributed:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None
        )

    lengths = [len(s) + len(t) for s, t, _ in data]
    pbar = None
    if config.progress and rank == 0:
        from tqdm.auto import tqdm

        pbar = tqdm(total=config.max_steps, initial=state["step"], desc="train", unit="step")
    log = open(out_dir / "train_log.jsonl", "a") if rank == 0 else None
    model.train()
    start = time.time() - state["train_seconds"]
    loss_sum, loss_n, tokens = 0.0, 0, 0
    stop = False
    while state["step"] < config.max_steps and not stop:
        batches = batches_for_epoch(lengths, config.batch_size * world, config.seed, state["epoch"])
        for b in range(state["batch_in_epoch"], len(batches)):
            idx = batches[b][rank::world]
            batch = {k: v.to(device) for k, v in collate([data[i] for i in idx], tokenizer.pad_token_id).items()}
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = compute_loss(model, train_model, batch, config.aux_weight)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            clock["seconds"] = time.time() - start
            scheduler.step()
            state["step"] += 1
            state["batch_in_epoch"] = b + 1
            state["train_seconds"] = time.time() - start
            loss_sum, loss_n = loss_sum + loss.item(), loss_n + 1
            tokens += int(batch["attention_mask"].sum()) + int((batch["labels"] != -100).sum())
            step = state["step"]
            if pbar is not None:
                pbar.update(1)
                pbar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            if rank == 0 and step % config.log_every == 0:
                entry = {
                    "step": step,
                    "loss": loss_sum / loss_n,
                    "lr": scheduler.get_last_lr()[0],
                    "minutes": state["train_seconds"] / 60,
                    "tokens_per_s": tokens / max(state["train_seconds"], 1e-9),
                }
                log.write(json.dumps(entry) + "\n")
                log.flush()
                loss_sum, loss_n = 0.0, 0
            out_of_time = config.max_minutes and state["train_seconds"] >= config.max_minutes * 60
            last = step >= config.max_steps or out_of_time
            if rank == 0 and ((config.eval_every and step % config.eval_every == 0) or last):
                metrics = {
                    "step": step,
                    "minutes": state["train_seconds"] / 60,
                    **evaluate_dev(model, tokenizer, dev, config, device),
                }
                state["metrics"].append(metrics)
                log.write(json.dumps({"eval": metrics}) + "\n")
                log.flush()
                logger.info(
                    "step %d dev: ERR %.3f P %.3f R %.3f over-correction %.4f",
                    step,
                    metrics["err"],
                    metrics["precision"],
                    metrics["recall"],
                    metrics["over_correction"],
                )
                start = time.time() - state["train_seconds"]  # evaluation time is not training time
            if rank == 0 and (step % config.save_every == 0 or last):
                save_checkpoint(out_dir, model, tokenizer, optimizer, scheduler, state, config)
            if last:
                stop = True
                break
        else:
            state["epoch"] += 1
            state["batch_in_epoch"] = 0
    if pbar is not None:
        pbar.close()
    model_dir = out_dir / "model"
    if rank == 0:
        log.close()
        export_model(model_dir, model, tokenizer, config, state["metrics"])
    if distributed:
        torch.distributed.destroy_process_group()
    return model_dir


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """CLI flags mirror TrainConfig fields (`--max-steps`, `--no-progress`, ...); `--config FILE` loads JSON first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="JSON file of TrainConfig fields")
    hints = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for name, f in hints.items():
        flag = "--" + name.replace("_", "-")
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        if kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif kind == "int":
            parser.add_argument(flag, type=int, default=None)
        elif kind == "float":
            parser.add_argument(flag, type=float, default=None)
        else:
            parser.add_argument(flag, type=str, default=None)
    args = parser.parse_args(argv)
    data = json.loads(args.config.read_text()) if args.config else {}
    data.update({k: v for k, v in vars(args).items() if k != "config" and v is not None})
    try:
        return TrainConfig.from_dict(data)
    except ValueError as e:
        parser.error(str(e))


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = parse_args(argv)
    model_dir = train(config)
    print(f"model written to {model_dir}")


if __name__ == "__main__":
    main()
