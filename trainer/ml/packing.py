"""Prefix-sharing packing: many sequences in one row, no padding, shared prefixes computed once.

Chat fine-tuning data repeats itself at the start of every sequence: the same system
prompt (or the template's default one), often the same opening user turn. Here a
micro-batch of sequences becomes a token *trie*: each distinct prefix is one node, laid out
in a single row. A node attends to exactly its ancestors (a 4D boolean mask, which the HF
Llama SDPA path uses as given) and sits at position ``depth`` (``position_ids``), so every
node's hidden state equals what the model computes for that prefix on its own sequence.
The loss is taken at ``(node, next token)`` pairs, one per labelled target of each
sequence, so a shared node that precedes several targets contributes once per target,
exactly as in the unpacked batch. Only those positions go through the LM head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from trainer.ml.data import TokenizedSequence


@dataclass
class PackedBatch:
    """One packed row: model inputs plus where the loss is taken."""

    input_ids: torch.Tensor
    """``[1, n_nodes]`` token ids of the trie nodes."""
    position_ids: torch.Tensor
    """``[1, n_nodes]`` depth of each node."""
    attention_mask: torch.Tensor
    """``[1, 1, n_nodes, n_nodes]`` bool, True where a node may attend (its ancestors)."""
    loss_positions: torch.Tensor
    """``[n_targets]`` node whose output predicts each target."""
    loss_targets: torch.Tensor
    """``[n_targets]`` the target token ids."""
    n_tokens: int
    """Tokens of the unpacked sequences (what training is billed on)."""

    @property
    def n_nodes(self) -> int:
        return int(self.input_ids.shape[1])

    @property
    def n_targets(self) -> int:
        return int(self.loss_targets.shape[0])

    def to(self, device: torch.device | str) -> PackedBatch:
        """The same batch on ``device``."""
        return PackedBatch(
            self.input_ids.to(device),
            self.position_ids.to(device),
            self.attention_mask.to(device),
            self.loss_positions.to(device),
            self.loss_targets.to(device),
            self.n_tokens,
        )


def pack(sequences: Sequence[TokenizedSequence], share_prefixes: bool = True) -> PackedBatch:
    """Pack ``sequences`` into one row (a trie when ``share_prefixes``, else concatenated)."""
    tokens: list[int] = []
    depth: list[int] = []
    children: list[dict[int, int]] = []
    roots: dict[int, int] = {}
    paths: list[list[int]] = []
    loss_pos: list[int] = []
    loss_tgt: list[int] = []
    n_tokens = 0
    for seq in sequences:
        path: list[int] = []
        level = roots
        for t, tok in enumerate(seq.input_ids):
            node = level.get(tok) if share_prefixes else None
            if node is None:
                node = len(tokens)
                tokens.append(tok)
                depth.append(t)
                children.append({})
                if share_prefixes:
                    level[tok] = node
            path.append(node)
            level = children[node]
        for t in range(1, len(seq)):
            if seq.labels[t]:
                loss_pos.append(path[t - 1])
                loss_tgt.append(seq.input_ids[t])
        paths.append(path)
        n_tokens += len(seq)

    n = len(tokens)
    mask = torch.zeros(n, n, dtype=torch.bool)
    for path in paths:
        if not path:
            continue
        idx = torch.tensor(path)
        causal = torch.ones(len(path), len(path), dtype=torch.bool).tril_()
        # rows = queries, cols = keys: query path[i] sees keys path[:i+1]
        mask[idx[:, None], idx[None, :]] |= causal
    return PackedBatch(
        input_ids=torch.tensor([tokens], dtype=torch.long),
        position_ids=torch.tensor([depth], dtype=torch.long),
        attention_mask=mask[None, None],
        loss_positions=torch.tensor(loss_pos, dtype=torch.long),
        loss_targets=torch.tensor(loss_tgt, dtype=torch.long),
        n_tokens=n_tokens,
    )


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def plan_micro_batches(
    sequences: Sequence[TokenizedSequence], max_nodes: int
) -> list[list[TokenizedSequence]]:
    """Split one optimizer batch into micro-batches of at most ``max_nodes`` trie nodes.

    Sequences are sorted by their token ids, so sequences with common prefixes land in the
    same micro-batch; in sorted order a sequence adds ``len - common_prefix(previous)``
    new nodes to the trie. A sequence longer than ``max_nodes`` gets a micro-batch of its own.
    """
    ordered = sorted(sequences, key=lambda s: s.input_ids)
    groups: list[list[TokenizedSequence]] = []
    current: list[TokenizedSequence] = []
    size = 0
    for seq in ordered:
        new = len(seq) - (_common_prefix(current[-1].input_ids, seq.input_ids) if current else 0)
        if current and size + new > max_nodes:
            groups.append(current)
            current, size, new = [], 0, len(seq)
        current.append(seq)
        size += new
    if current:
        groups.append(current)
    return groups
