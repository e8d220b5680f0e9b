"""A small training loop under torch.compile: the README's program for `python -m kiln.inductor`.

Nothing in it knows about Kiln: run under `python -m kiln.inductor` (or with KILN_INDUCTOR set),
its forward and backward kernels compile on a Kiln pool. --epochs N (default 3) steps of SGD on a
fixed random batch; it prints the loss of each, which falls.
"""
import argparse

import torch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    compiled = torch.compile(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(64, 16), torch.randn(64, 1)
    for epoch in range(1, args.epochs + 1):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(compiled(x), y)
        loss.backward()
        optimizer.step()
        print(f"epoch {epoch}: loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
