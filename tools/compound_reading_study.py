"""Prompts with derived or compound words, scored read as written and with the compound reading.

    python tools/compound_reading_study.py [EDITOR.safetensors]

Per prompt: mean PSNR over 8 held-out world identities and the input + yaw -30/+30 views (the protocol of
``tools/prompt_sweep.py``) of the editor with the prompt read as written (``prompt_vocabulary = None``),
read through the known words its words begin with (:func:`pe3d.prompt_vocabulary.read_compounds`, what
every inference path does), and with the style's first training prompt; a Markdown table
(docs/results/quality/compound_words.md).
"""

import argparse

import torch

from pe3d.evaluation import WorldEvalConfig, build_world_eval_set, model_inputs
from pe3d.evaluation.world import filter_targets, prompt_psnr, style_filter_name
from pe3d.models.editor import load_editor
from pe3d.styles.discovery import load_named_style
from pe3d.weights import resolve_weights

PROMPTS = [("pencil_sketch", "make the portrait sketchy"), ("pencil_sketch", "a pencilled portrait"),
           ("bronze_statue", "a bronzed face"), ("marble_statue", "a marbled face"),
           ("zombie", "turn them into zombies"), ("marble_statue", "a statuesque portrait"),
           ("pencil_sketch", "a sketchbook portrait of the person")]
"""(style, prompt): derived words written after the rule, and the test prompt that suggested it (last)."""


@torch.no_grad()
def main(path: str) -> None:
    data = build_world_eval_set(WorldEvalConfig(identities=8, styles=[], novel_pitches_deg=[]))
    names = data.plan.scored
    editor = load_editor(resolve_weights(path, "editor_mini")).eval()
    vocabulary = editor.prompt_vocabulary
    if vocabulary is None:
        raise SystemExit(f"{path or 'the shipped editor'}: records no styles with training prompts; nothing to read through")
    inputs = model_inputs(data, editor.cfg.prior.encoder.image_size)

    def score(prompt: str, views) -> float:
        return prompt_psnr(editor, inputs, prompt, views, names, data.resolution)

    print("| style | prompt | read as | as written | compound reading | first train prompt |")
    print("|---|---|---|---|---|---|")
    for style, prompt in PROMPTS:
        views = filter_targets(data.truth, style_filter_name(load_named_style(style))).views
        editor.prompt_vocabulary = None
        written = score(prompt, views)
        editor.prompt_vocabulary = vocabulary
        read, train = score(prompt, views), score(load_named_style(style).prompts.train[0], views)
        print(f"| {style} | {prompt} | {editor.read_prompt(prompt)} | {written:.2f} | {read:.2f} | {train:.2f} |", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("editor", nargs="?", default="", help="editor .safetensors (default: the shipped mini editor)")
    main(parser.parse_args().editor)
