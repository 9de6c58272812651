#!/usr/bin/env python3
"""Cross-check optiq's tokenizers and chat templates (tests/interop/tokenizer_dump.cpp) against references.

1. SmolLM2-135M-Instruct's byte-level BPE (GGUF "gpt2" vocabulary, pre "smollm"): a HF `tokenizers`
   Tokenizer built from the GGUF's tokens + merges + control tokens (BPE model, Digits(individual) +
   ByteLevel pre-tokenizer, ByteLevel decoder: SmolLM2's tokenizer.json) vs optiq on WikiText-2 test
   lines (the first 300, every line with non-ASCII characters), hand-written edge cases, and the whole
   file as one text: ids equal, decode equal to HF's decode, streaming decode equal to decode; then the
   same vocabulary loaded from the tokenizer.json HF writes for it.
2. Qwen2.5-Coder's vocabulary (pre "qwen2"), when its GGUF is in the cache (scripts/fetch_models.sh
   --qwen): the same against a HF Split(Qwen regex) + ByteLevel tokenizer; and the qwen2 / llama3
   pre-tokenizer scanners against HF's Split(Regex) on the same texts (no model needed).
3. stories260K's llama2.c tokenizer.bin: an independent Python re-implementation of llama2.c's
   encode() (README.md of ../shared/models) vs optiq's SentencePieceBpe, ids and decode.
4. Chat templates: jinja2 rendering of SmolLM2's tokenizer.chat_template (from the GGUF), Qwen2.5's (from
   its GGUF when present) and Llama-3's published template vs optiq's ChatTemplate::detect + render.

Exit codes: 0 all equal; 1 a mismatch or error; 77 skip (a package missing, or the SmolLM2 file
absent), except under CI=true, where a skip reason is a failure.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def skip(msg):
    if os.environ.get("CI") == "true":
        print(f"check_tokenizer: {msg} (CI=true, so this is a failure)", file=sys.stderr)
        sys.exit(1)
    print(f"check_tokenizer: {msg} -- skipping", file=sys.stderr)
    sys.exit(SKIP)


try:
    import gguf
    import jinja2
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
except ImportError as e:
    skip(f"{e.name} is not importable; install it with: pip install tokenizers gguf jinja2")

QWEN_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
           r"\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_RE = QWEN_RE.replace(r"\p{N}|", r"\p{N}{1,3}|")
# meta-llama/Meta-Llama-3-8B-Instruct tokenizer_config.json chat_template.
LLAMA3_TEMPLATE = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
                   "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
                   "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
                   "{{ content }}{% endfor %}{% if add_generation_prompt %}"
                   "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

EDGE = [
    "", " ", "  ", "\n", "\n\n", " \n ", "\t\tx", "a  b   c", "trailing   ", "  leading",
    "Hello, world!", "I'm you're we've they'll he'd it's I'M YOU'RE", "don't 's 't",
    "1234567890 12 345 6789", "3.14159 and 2,000,000 dollars; 1st 2nd", "x²+y³ ½ Ⅻ ٣٤ ０１",
    "Ünïcödé façade naïve Ελληνικά русский 中文字符 日本語のテキスト 한국어",
    "emoji 😀👍🏽 👨‍👩‍👧 ☃", "tabs\tand\r\nCRLF\rlines\n\n\n  \n", "    def f(x):\n        return x ** 2\n",
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", "<|endoftext|><|endoftext|>x<|im_end",
    "a<|im_start|>b", "!!! ??? ... --- @-@ ''' \"\"\"", "e\u0301 combining", "\u00a0nbsp\u2009thin\u3000ideo",
    "ſ 'S 'Ll 'VE", "  \n\n  word", "word \n", "中文，标点。", "A" * 300, " " * 50 + "x",
]


def wikitext_lines(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    picked = lines[:300] + [l for l in lines[300:] if any(ord(c) > 127 for c in l)]
    return picked, "\n".join(lines)


def run_dump(dump, mode, source, payload):
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "in.json"), os.path.join(d, "out.json")
        with open(src, "w", encoding="utf-8") as f:
            json.dump(payload, f, ensure_ascii=False)
        r = subprocess.run([dump, mode, source, src, dst], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{dump} {mode} failed ({r.returncode}): {r.stderr.strip()}")
        with open(dst, encoding="utf-8") as f:
            return json.load(f)


class Report:
    def __init__(self):
        self.failures = 0

    def check(self, name, refs, gots, show=lambda x: x):
        bad = [i for i, (a, b) in enumerate(zip(refs, gots)) if a != b]
        if len(refs) != len(gots):
            bad = bad or [min(len(refs), len(gots))]
        if bad:
            self.failures += 1
            i = bad[0]
            print(f"FAIL {name}: {len(bad)} of {len(refs)} differ; first at {i}:", file=sys.stderr)
            print(f"  ref: {show(refs[i]) if i < len(refs) else '<none>'}"[:2000], file=sys.stderr)
            print(f"  got: {show(gots[i]) if i < len(gots) else '<none>'}"[:2000], file=sys.stderr)
        else:
            print(f"ok   {name}: {len(refs)} equal")


def field(reader, key):
    return reader.fields[key].contents() if key in reader.fields else None


def hf_from_gguf(reader):
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ")) for m in field(reader, "tokenizer.ggml.merges")]
    pre = field(reader, "tokenizer.ggml.pre")
    vocab = {}
    for i, t in enumerate(tokens):
        vocab.setdefault(t, i)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=pre == "llama-bpe"))
    if pre == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    elif pre == "qwen2":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN_RE), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                            for i in range(len(tokens)) if types[i] in (3, 4)])
    return tok


def check_bpe_model(rep, dump, path, name, texts, whole):
    reader = gguf.GGUFReader(path)
    hf = hf_from_gguf(reader)
    t0 = time.time()
    ref = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    ref_whole = hf.encode(whole, add_special_tokens=False).ids
    t1 = time.time()
    got = run_dump(dump, "gguf", path, {"texts": texts + [whole]})
    t2 = time.time()
    print(f"     {name}: HF {t1 - t0:.1f} s, optiq (load + encode) {t2 - t1:.1f} s for {len(texts)} texts + "
          f"the whole file ({len(ref_whole)} tokens)")
    rep.check(f"{name} ids", ref, got["ids"][:-1])
    rep.check(f"{name} ids, whole WikiText file", [ref_whole], [got["ids"][-1]], show=lambda v: v[:50])
    ref_dec = [hf.decode(ids, skip_special_tokens=False) for ids in ref]
    rep.check(f"{name} decode == HF decode", ref_dec, got["decoded"][:-1], show=repr)
    rep.check(f"{name} decode(encode(x)) == x", texts, got["decoded"][:-1], show=repr)
    rep.check(f"{name} streaming decode == decode", got["decoded"], got["streamed"], show=repr)

    # The same vocabulary through HF's own tokenizer.json serialization (SmolLM2's merges rewritten in
    # the legacy "a b" form, Qwen's left as ["a", "b"] pairs).
    doc = json.loads(hf.to_str())
    if name == "SmolLM2":
        doc["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in doc["model"]["merges"]]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    try:
        got_json = run_dump(dump, "hfjson", f.name, {"texts": texts})
    finally:
        os.unlink(f.name)
    rep.check(f"{name} ids from tokenizer.json", ref, got_json["ids"])
    return reader


def check_pretokenizers(rep, dump, texts):
    for name, pattern in (("qwen2", QWEN_RE), ("llama3", LLAMA3_RE)):
        split = pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False)
        ref = [[p for p, _ in split.pre_tokenize_str(t)] for t in texts]
        got = run_dump(dump, "pretok", name, {"texts": texts})["pieces"]
        rep.check(f"{name} pre-tokenizer pieces vs HF Split(Regex)", ref, got, show=repr)
    bl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    mapping = {c: b for b, c in enumerate(bytes_to_unicode())}
    ref = [[bytes(mapping[c] for c in p).decode("utf-8") for p, _ in bl.pre_tokenize_str(t)] for t in texts]
    got = run_dump(dump, "pretok", "gpt2", {"texts": texts})["pieces"]
    rep.check("gpt2 pre-tokenizer pieces vs HF ByteLevel", ref, got, show=repr)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]


# ---- llama2.c encode(), re-implemented from the description in ../shared/models/README.md ----------
def read_llama2c_tokenizer(path):
    data = open(path, "rb").read()
    (max_len,) = struct.unpack_from("<i", data, 0)
    pos, vocab, scores = 4, [], []
    while pos < len(data):
        score, n = struct.unpack_from("<fi", data, pos)
        pos += 8
        vocab.append(data[pos:pos + n])
        scores.append(score)
        pos += n
    return vocab, scores


def llama2c_encode(text, vocab, scores, lookup, bos=True):
    raw = text.encode("utf-8")
    tokens = [1] if bos else []
    if raw:
        tokens.append(lookup.get(b" ", -1))
    i = 0
    while i < len(raw):  # one UTF-8 character at a time: a lead byte and its continuation bytes
        j = i + 1
        while j < len(raw) and (raw[j] & 0xC0) == 0x80 and j - i < 4:
            j += 1
        ch = raw[i:j]
        if ch in lookup:
            tokens.append(lookup[ch])
        else:
            tokens.extend(b + 3 for b in ch)
        i = j
    while True:  # merge the best-scoring adjacent pair, leftmost on ties (strict >)
        best, best_id, best_i = -1e10, -1, -1
        for k in range(len(tokens) - 1):
            cid = lookup.get(vocab[tokens[k]] + vocab[tokens[k + 1]], -1)
            if cid != -1 and scores[cid] > best:
                best, best_id, best_i = scores[cid], cid, k
        if best_i == -1:
            break
        tokens[best_i:best_i + 2] = [best_id]
    return tokens


def llama2c_decode(ids, vocab):
    out, prev = b"", -1
    for t in ids:
        if t in (0, 1, 2):
            prev = t
            continue
        piece = vocab[t]
        if (prev == 1 or prev == -1) and piece.startswith(b" "):
            piece = piece[1:]
        if len(piece) == 6 and piece.startswith(b"<0x") and piece.endswith(b">"):
            piece = bytes([int(piece[3:5], 16)])
        out += piece
        prev = t
    return out.decode("utf-8", errors="replace")


def check_llama2c(rep, dump, path, texts):
    vocab, scores = read_llama2c_tokenizer(path)
    lookup = {}
    for i, v in enumerate(vocab):
        lookup.setdefault(v, i)
    texts = [t for t in texts if len(t) <= 600]
    ref = [llama2c_encode(t, vocab, scores, lookup) for t in texts]
    got = run_dump(dump, "llama2c", path, {"texts": texts})
    rep.check("stories260K ids vs llama2.c encode (Python)", ref, got["ids"])
    rep.check("stories260K decode == llama2.c decode", [llama2c_decode(r, vocab) for r in ref], got["decoded"],
              show=repr)
    rep.check("stories260K decode(encode(x)) == x", texts, got["decoded"], show=repr)
    rep.check("stories260K streaming decode == decode", got["decoded"], got["streamed"], show=repr)


# ---- chat templates ----------------------------------------------------------------------------------
CONVERSATIONS = [
    {"messages": [{"role": "user", "content": "Hi!"}], "add_generation_prompt": True},
    {"messages": [{"role": "user", "content": "Hi!"}], "add_generation_prompt": False},
    {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"}],
     "add_generation_prompt": True},
    {"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hello"},
                  {"role": "assistant", "content": "Hi, how can I help?"},
                  {"role": "user", "content": "  Tell me a joke.\n"}], "add_generation_prompt": True},
    {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                  {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}],
     "add_generation_prompt": False},
    {"messages": [{"role": "user", "content": "first"}, {"role": "system", "content": "late system"},
                  {"role": "user", "content": "ünïcödé 😀\n\nmulti\nline  "}], "add_generation_prompt": True},
    {"messages": [{"role": "assistant", "content": "I start."}], "add_generation_prompt": True},
    {"messages": [{"role": "user", "content": ""}], "add_generation_prompt": True},
    {"messages": [{"role": "user", "content": "call it"}, {"role": "tool", "content": "{\"t\": 21}"},
                  {"role": "tool", "content": "42"}, {"role": "user", "content": "thanks"}],
     "add_generation_prompt": True},
]


def check_chat(rep, dump, name, template, conversations, bos_token="<|begin_of_text|>"):
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)  # what HF transformers uses
    tmpl = env.from_string(template)
    ref = [tmpl.render(messages=c["messages"], add_generation_prompt=c["add_generation_prompt"],
                       bos_token=bos_token) for c in conversations]
    with tempfile.NamedTemporaryFile("w", suffix=".jinja", delete=False, encoding="utf-8") as f:
        f.write(template)
    try:
        got = run_dump(dump, "chat", f.name, {"conversations": conversations})
    finally:
        os.unlink(f.name)
    print(f"     {name}: detected as {got['format']}")
    rep.check(f"{name} chat template vs jinja2", ref, got["rendered"], show=repr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True)
    ap.add_argument("--cache", default=os.environ.get("OPTIQ_CACHE", os.path.expanduser("~/.cache/optiq")))
    ap.add_argument("--wikitext", default=os.path.join(ROOT, "..", "shared", "data", "wikitext-2-raw-test.txt"))
    ap.add_argument("--stories", default=os.path.join(ROOT, "..", "shared", "models", "stories260K", "tok512.bin"))
    args = ap.parse_args()

    smol = os.path.join(args.cache, "SmolLM2-135M-Instruct.Q4_1.gguf")
    qwen = os.path.join(args.cache, "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
    if not os.path.exists(smol):
        skip(f"{smol} is absent; run scripts/fetch_models.sh")
    if not os.path.exists(args.wikitext):
        skip(f"{args.wikitext} is absent")
    lines, whole = wikitext_lines(args.wikitext)
    texts = EDGE + lines
    rep = Report()

    reader = check_bpe_model(rep, args.dump, smol, "SmolLM2", texts, whole)
    check_chat(rep, args.dump, "SmolLM2", field(reader, "tokenizer.chat_template"), CONVERSATIONS)
    check_chat(rep, args.dump, "Llama-3", LLAMA3_TEMPLATE, CONVERSATIONS)
    check_pretokenizers(rep, args.dump, texts)
    if os.path.exists(qwen):
        qreader = check_bpe_model(rep, args.dump, qwen, "Qwen2.5", texts, whole)
        check_chat(rep, args.dump, "Qwen2.5", field(qreader, "tokenizer.chat_template"), CONVERSATIONS)
    else:
        print(f"note: {qwen} absent (scripts/fetch_models.sh --qwen): Qwen2.5 vocabulary not checked")
    if os.path.exists(args.stories):
        check_llama2c(rep, args.dump, args.stories, texts)
    else:
        print(f"note: {args.stories} absent: stories260K not checked")

    if rep.failures:
        print(f"check_tokenizer: {rep.failures} check(s) failed", file=sys.stderr)
        return 1
    print("check_tokenizer: all equal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
