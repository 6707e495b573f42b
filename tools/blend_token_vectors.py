"""A token-vector file whose rows mix the WordNet vectors with a fixed random vector per token.

    python tools/blend_token_vectors.py --mix 0.7 --out runs/lexicon-mix/lexicon_mix07.safetensors

Each row becomes ``mix * wordnet_unit + sqrt(1 - mix**2) * random_unit`` (random vectors drawn with
``--seed``), so words that are WordNet neighbours share about ``mix**2`` of their direction while every
word keeps a part of its own: a trained word such as "warhol" stays distinct from its WordNet
neighbours. Use it as ``model_overrides=[prompt_encoder.text.token_vectors=FILE]`` in ``pe3d fit distill``
(docs/results/quality/lexicon.md, last section). The model option
``prompt_encoder.text.token_vectors_mix=0.7`` (with ``token_vectors=shipped:lexicon_mini``) builds the
same rows without a file.
"""

import argparse

import torch

from pe3d.models.lexicon import blend_with_random, load_token_vectors, resolve_token_vectors, save_token_vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="shipped:lexicon_mini", help="token-vector file to blend (path or shipped:NAME)")
    parser.add_argument("--mix", type=float, default=0.7, help="share of each row that is the WordNet vector, in (0, 1]")
    parser.add_argument("--seed", type=int, default=7, help="seed of the random part")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if not 0.0 < args.mix <= 1.0:
        parser.error(f"--mix must be in (0, 1], got {args.mix}")
    ids, vectors = load_token_vectors(resolve_token_vectors(args.source))
    blended = blend_with_random(vectors, args.mix, args.seed)
    path = save_token_vectors(args.out, ids, blended, {"source": args.source, "mix": args.mix, "random_seed": args.seed})
    print(f"{ids.numel():,} rows, mix {args.mix} -> {path}")


if __name__ == "__main__":
    main()
