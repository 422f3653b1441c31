#!/usr/bin/env python3
"""The MNIST reference recipe of symgrad's example, in JAX (`jit`) or PyTorch, for side-by-side timing.

784-128-64-10 MLP, ReLU, softmax cross-entropy, Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8),
batch 64 (the last batch of an epoch is the remainder, 938 steps per epoch as in symgrad),
a fresh shuffle every epoch, PyTorch's default initialisation (uniform in +-1/sqrt(fan_in)),
test accuracy after every epoch. Data: the gzip IDX files in $MNIST_DIR, preloaded as f32
tensors scaled to [0, 1] (no DataLoader, no torchvision), so both frameworks time only
training. Prints one JSON object per epoch (the fields of `cargo run --example mnist --
--metrics`) and a summary object last, e.g.

    MNIST_DIR=../shared/data/mnist python3 benches/compare/mnist_reference.py --framework jax --seed 0

`benches/compare/run.sh` runs this beside symgrad's example, interleaved, and prints a table.
"""

import argparse
import gzip
import json
import os
import resource
import struct
import sys
import time

import numpy as np


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(mnist_dir):
    def one(name):
        for suffix in ("-idx3-ubyte.gz", "-idx1-ubyte.gz"):
            p = os.path.join(mnist_dir, name + suffix)
            if os.path.exists(p):
                return read_idx(p)
        sys.exit(f"{mnist_dir}: no {name}-idx?-ubyte.gz")

    xtr = one("train-images").reshape(-1, 784).astype(np.float32) / 255.0
    ytr = one("train-labels").astype(np.int64)
    xte = one("t10k-images").reshape(-1, 784).astype(np.float32) / 255.0
    yte = one("t10k-labels").astype(np.int64)
    return xtr, ytr, xte, yte


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_torch(args, xtr, ytr, xte, yte, emit):
    import torch
    import torch.nn.functional as F

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xtr, ytr = torch.from_numpy(xtr), torch.from_numpy(ytr)
    xte, yte = torch.from_numpy(xte), torch.from_numpy(yte)
    gen = torch.Generator().manual_seed(args.seed)
    n = xtr.shape[0]
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        total, correct = 0.0, 0
        for i in range(0, n, args.batch):
            idx = perm[i:i + args.batch]
            xb, yb = xtr[idx], ytr[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
        train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        with torch.no_grad():
            acc = (model(xte).argmax(1) == yte).float().mean().item()
        emit(epoch, total / n, correct / n, acc, train_s, time.perf_counter() - t1, 0.0)


def run_jax(args, xtr, ytr, xte, yte, emit):
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(args.seed)
    sizes = [784, 128, 64, 10]
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        key, kw, kb = jax.random.split(key, 3)
        bound = 1.0 / np.sqrt(fan_in)
        params.append((jax.random.uniform(kw, (fan_in, fan_out), jnp.float32, -bound, bound),
                       jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound)))

    def logits_of(p, x):
        for w, b in p[:-1]:
            x = jax.nn.relu(x @ w + b)
        w, b = p[-1]
        return x @ w + b

    def loss_fn(p, x, y):
        z = logits_of(p, x)
        loss = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), y[:, None], 1))
        return loss, jnp.sum(jnp.argmax(z, 1) == y)

    @jax.jit
    def step(p, m, v, t, x, y):
        (loss, correct), g = jax.value_and_grad(loss_fn, has_aux=True)(p, x, y)
        b1, b2, lr, eps = 0.9, 0.999, 1e-3, 1e-8
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, g)
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        p = jax.tree_util.tree_map(
            lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), p, m, v)
        return p, m, v, loss, correct

    accuracy = jax.jit(lambda p, x, y: jnp.mean(jnp.argmax(logits_of(p, x), 1) == y))
    m = jax.tree_util.tree_map(jnp.zeros_like, params)
    v = jax.tree_util.tree_map(jnp.zeros_like, params)
    ytr32 = ytr.astype(np.int32)
    xtr_d, ytr_d = jnp.asarray(xtr), jnp.asarray(ytr32)
    xte_d, yte_d = jnp.asarray(xte), jnp.asarray(yte.astype(np.int32))
    n = xtr.shape[0]
    # Compile both batch shapes (64 and the remainder) before timing, and report it.
    t0 = time.perf_counter()
    for b in sorted({args.batch, n % args.batch or args.batch}):
        out = step(params, m, v, 1.0, xtr_d[:b], ytr_d[:b])
        jax.block_until_ready(out)
    accuracy(params, xte_d, yte_d).block_until_ready()
    compile_s = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed)
    t = 0
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        # Batches are gathered on the host with NumPy (one dispatch per step, the jitted
        # step; indexing device arrays per batch costs several dispatches more).
        perm = rng.permutation(n)
        total, correct = 0.0, 0
        losses, corrects = [], []
        for i in range(0, n, args.batch):
            idx = perm[i:i + args.batch]
            t += 1
            params, m, v, loss, c = step(params, m, v, float(t), xtr[idx], ytr32[idx])
            losses.append(loss * len(idx))
            corrects.append(c)
        total = float(sum(jax.device_get(losses)))
        correct = int(sum(jax.device_get(corrects)))
        train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        acc = float(accuracy(params, xte_d, yte_d))
        emit(epoch, total / n, correct / n, acc, train_s, time.perf_counter() - t1,
             compile_s if epoch == 1 else 0.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--framework", choices=["jax", "torch"], required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="PyTorch intra-op threads (0: default)")
    args = ap.parse_args()
    mnist_dir = os.environ.get("MNIST_DIR")
    if not mnist_dir:
        sys.exit("set MNIST_DIR to the directory of the MNIST gzip IDX files")
    xtr, ytr, xte, yte = load(mnist_dir)
    epochs = []

    def emit(epoch, train_loss, train_acc, test_acc, seconds, eval_seconds, compile_s):
        rec = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc,
               "test_accuracy": test_acc, "seconds": seconds, "eval_seconds": eval_seconds,
               "compile_seconds": compile_s}
        epochs.append(rec)
        print(json.dumps(rec), flush=True)

    t0 = time.perf_counter()
    (run_jax if args.framework == "jax" else run_torch)(args, xtr, ytr, xte, yte, emit)
    wall = time.perf_counter() - t0
    train = sum(e["seconds"] for e in epochs)
    later = [e["seconds"] for e in epochs[1:]] or [train]
    print(json.dumps({
        "summary": args.framework, "seed": args.seed, "epochs": args.epochs,
        "train_seconds": train, "per_epoch_after_first": sum(later) / len(later),
        "compile_seconds": sum(e["compile_seconds"] for e in epochs),
        "eval_seconds": sum(e["eval_seconds"] for e in epochs),
        "final_test_accuracy": epochs[-1]["test_accuracy"], "wall_seconds": wall,
        "peak_rss_mib": peak_rss_mib()}), flush=True)


if __name__ == "__main__":
    main()
