#!/usr/bin/env python3
"""optiq-serve driven by the official clients (PyPI openai and anthropic) and by raw HTTP.

The real server starts on a free loopback port (--port 0; it prints "listening on http://HOST:PORT")
with stories260K and an API key, and must give:
  * greedy (temperature 0) text equal to optiq-generate's for the same prompt, through
    /v1/completions, /v1/chat/completions and /v1/messages, streamed or not (the chat endpoints on
    stories260K use the plain transcript fallback "User: ...\\n\\nAssistant:", since the model has no
    chat template), with usage counts equal to optiq-generate's prompt / decode token counts;
  * stop sequences cut the text as optiq-generate --stop does, with finish_reason "stop" /
    stop_reason "stop_sequence";
  * the Anthropic event sequence, OpenAI chunk objects, [DONE], include_usage;
  * 401 with a wrong key (both clients), 4xx bodies in the right dialect for malformed JSON, wrong
    types, an unknown model, max_tokens out of range and a prompt longer than the context;
  * 8 concurrent requests (threads) equal to their sequential results;
  * a clean exit on SIGTERM, also while streams are running (each ends, none hangs).
Then, when the SmolLM2-135M-Instruct GGUF is present (scripts/fetch_models.sh), a chat through its
template: equal to optiq-generate --chat, through both clients; and a streaming client that closes
its connection after the first chunk cancels its generation (the slot frees within seconds, /health
counts one cancellation).

Sampling parameters the anthropic SDK no longer lists (temperature in 2.x) go through extra_body,
which any SDK version sends as they are.
Exit 77 (skip) when openai or anthropic is missing; under CI=true that is a failure.
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

try:
    import anthropic
    import openai
except ImportError as e:
    print(f"{e.name} is not installed (pip install openai anthropic): skipping")
    sys.exit(1 if os.environ.get("CI") == "true" else 77)

KEY = "optiq-test-key"
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


class Server:
    """optiq-serve on port 0; the port is read from its stderr."""

    def __init__(self, binary, *args):
        self.proc = subprocess.Popen([binary, "--port", "0", "--api-key", KEY, *args], stderr=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, text=True)
        self.log = []
        port = threading.Event()
        self.url = None

        def read():
            for line in self.proc.stderr:
                self.log.append(line)
                m = re.search(r"listening on (http://[\d.]+:\d+)", line)
                if m:
                    self.url = m.group(1)
                    port.set()
            port.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        port.wait(120)
        if not self.url:
            self.proc.kill()
            raise RuntimeError("optiq-serve did not start:\n" + "".join(self.log))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


def generate(binary, *args):
    """optiq-generate: (stdout, prompt token count, decode token count, stop reason)."""
    r = subprocess.run([binary, "--threads", "1", *args], capture_output=True, text=True, timeout=120)
    m = re.search(r"prompt: (\d+) tokens.*decode: (\d+) tokens.*stop: (.*)", r.stderr)
    if r.returncode != 0 or not m:
        raise RuntimeError(f"optiq-generate failed: {r.stderr}")
    return r.stdout, int(m.group(1)), int(m.group(2)), m.group(3).strip()


def raw(url, path, body, headers=None):
    """(status, parsed JSON body) of a POST with a raw body (bytes or str)."""
    h = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}", **(headers or {})}
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url + path, data=data, headers=h, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def check_stories(args):
    model = os.path.join(args.models, "stories260K", "stories260K.bin")
    tok = os.path.join(args.models, "stories260K", "tok512.bin")
    gen = lambda *a: generate(args.generate, "--model", model, "--tokenizer", tok, *a)
    srv = Server(args.server, "--model", model, "--tokenizer", tok, "--model-name", "stories260K", "--max-concurrent",
                 "4", "--threads", "1")
    try:
        oa = openai.OpenAI(base_url=srv.url + "/v1", api_key=KEY, max_retries=0)
        an = anthropic.Anthropic(base_url=srv.url, api_key=KEY, max_retries=0)

        # models, health
        check([m.id for m in oa.models.list().data] == ["stories260K"], "GET /v1/models lists the model")
        with urllib.request.urlopen(srv.url + "/health", timeout=10) as r:
            h = json.loads(r.read())
        check(h["status"] == "ok" and h["max_concurrent"] == 4 and h["context"] == 512, f"GET /health: {h}")

        # completions: greedy equals optiq-generate, usage equals its token counts
        prompt = "Once upon a time"
        out, n_prompt, n_decode, _ = gen("--prompt", prompt, "--max-tokens", "40")
        want = out[len(prompt):-1] if out.startswith(prompt) and out.endswith("\n") else None
        r = oa.completions.create(model="stories260K", prompt=prompt, max_tokens=40, temperature=0)
        check(r.choices[0].text == want, f"completion equals optiq-generate: {r.choices[0].text!r} vs {want!r}")
        check(r.choices[0].finish_reason == "length", "finish_reason length")
        check(r.usage.prompt_tokens == n_prompt and r.usage.completion_tokens == n_decode == 40
              and r.usage.total_tokens == n_prompt + 40, f"completion usage {r.usage} vs {n_prompt} + {n_decode}")
        check(r.object == "text_completion" and r.id.startswith("cmpl-"), "text_completion object")

        chunks = list(oa.completions.create(model="stories260K", prompt=prompt, max_tokens=40, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
        text = "".join(c.choices[0].text for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        check(text == want and finish == ["length"], f"streamed completion equals: {text!r}, {finish}")
        check(chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 40
              and chunks[-1].usage.prompt_tokens == n_prompt, "include_usage: last chunk carries usage")

        # token-id prompt: usage counts the ids given
        r = oa.completions.create(model="stories260K", prompt=[1, 403, 407], max_tokens=3, temperature=0)
        check(r.usage.prompt_tokens == 3 and r.usage.completion_tokens == 3, f"token-id prompt usage {r.usage}")

        # stop sequences
        out, _, n_stop, why = gen("--prompt", prompt, "--max-tokens", "100", "--stop", "Lily")
        want_stop = out[len(prompt):-1]
        r = oa.completions.create(model="stories260K", prompt=prompt, max_tokens=100, temperature=0, stop="Lily")
        check(why == "stop string" and r.choices[0].text == want_stop and r.choices[0].finish_reason == "stop"
              and r.usage.completion_tokens == n_stop, f"stop string: {r.choices[0].text!r} vs {want_stop!r}")
        text = "".join(c.choices[0].text for c in oa.completions.create(
            model="stories260K", prompt=prompt, max_tokens=100, temperature=0, stop=["Lily", "zzz"], stream=True))
        check(text == want_stop and "Lily" not in text, f"streamed stop string never shows it: {text!r}")

        # chat through the fallback transcript template
        chat_prompt = "User: Tell me a story.\n\nAssistant:"
        out, c_prompt, _, _ = gen("--prompt", chat_prompt, "--max-tokens", "30")
        want_chat = out[len(chat_prompt):-1] if out.startswith(chat_prompt) else None
        r = oa.chat.completions.create(model="stories260K", max_tokens=30, temperature=0,
                                       messages=[{"role": "user", "content": "Tell me a story."}])
        check(r.choices[0].message.content == want_chat and r.choices[0].message.role == "assistant",
              f"chat equals optiq-generate on the transcript prompt: {r.choices[0].message.content!r} vs {want_chat!r}")
        check(r.usage.prompt_tokens == c_prompt and r.usage.completion_tokens == 30 and r.object == "chat.completion",
              f"chat usage {r.usage}")
        chunks = list(oa.chat.completions.create(model="stories260K", max_tokens=30, temperature=0, stream=True,
                                                 messages=[{"role": "user", "content": "Tell me a story."}]))
        check(chunks[0].choices[0].delta.role == "assistant" and all(c.object == "chat.completion.chunk" for c in chunks),
              "chat stream: role first, chunk objects")
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        check(text == want_chat and chunks[-1].choices[0].finish_reason == "length", f"streamed chat equals: {text!r}")

        # Anthropic messages
        m = an.messages.create(model="stories260K", max_tokens=30, extra_body={"temperature": 0},
                               messages=[{"role": "user", "content": "Tell me a story."}])
        check(m.content[0].type == "text" and m.content[0].text == want_chat, f"message equals: {m.content[0].text!r}")
        check(m.stop_reason == "max_tokens" and m.usage.input_tokens == c_prompt and m.usage.output_tokens == 30
              and m.role == "assistant" and m.id.startswith("msg_"), f"message fields {m.stop_reason} {m.usage}")
        with an.messages.stream(model="stories260K", max_tokens=30, extra_body={"temperature": 0},
                                messages=[{"role": "user", "content": "Tell me a story."}]) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        check(text == want_chat and final.stop_reason == "max_tokens" and final.usage.output_tokens == 30,
              f"message stream text and final message: {text!r}")
        types = [e.type for e in an.messages.create(model="stories260K", max_tokens=5, extra_body={"temperature": 0}, stream=True,
                                                    messages=[{"role": "user", "content": "Hi"}])]
        check(types[:2] == ["message_start", "content_block_start"] and types[-3:] == [
            "content_block_stop", "message_delta", "message_stop"] and set(types[2:-3]) <= {"content_block_delta"},
              f"Anthropic event sequence: {types}")
        sys_prompt = "A story.\n\nUser: Tell me one.\n\nAssistant:"
        out, _, n_sys, why = gen("--prompt", sys_prompt, "--max-tokens", "60", "--stop", "magic")
        m = an.messages.create(model="stories260K", max_tokens=60, extra_body={"temperature": 0}, system="A story.",
                               stop_sequences=["magic"], messages=[{"role": "user", "content": "Tell me one."}])
        want_sys = out[len(sys_prompt):-1]
        want_reason = {"stop string": "stop_sequence", "max tokens": "max_tokens", "stop token": "end_turn"}[why]
        check(m.content[0].text == want_sys and m.usage.output_tokens == n_sys,
              f"system prompt + stop_sequences equal optiq-generate: {m.content[0].text!r} vs {want_sys!r}")
        check(m.stop_reason == want_reason and m.stop_sequence == ("magic" if why == "stop string" else None),
              f"stop_reason {m.stop_reason} / {m.stop_sequence} (optiq-generate: {why})")

        # 401 with a wrong key, both dialects
        try:
            openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong", max_retries=0).completions.create(
                model="stories260K", prompt="x", max_tokens=1)
            check(False, "openai: wrong key refused")
        except openai.AuthenticationError as e:
            check(e.status_code == 401 and e.body["code"] == "invalid_api_key", f"openai: 401 {e.body}")
        try:
            anthropic.Anthropic(base_url=srv.url, api_key="wrong", max_retries=0).messages.create(
                model="stories260K", max_tokens=1, messages=[{"role": "user", "content": "x"}])
            check(False, "anthropic: wrong key refused")
        except anthropic.AuthenticationError as e:
            check(e.status_code == 401 and e.body["error"]["type"] == "authentication_error", f"anthropic: 401 {e.body}")
        st, body = raw(srv.url, "/v1/completions", '{"model": "stories260K", "prompt": "x"}', {"Authorization": ""})
        check(st == 401 and body["error"]["type"] == "invalid_request_error", "no key: 401")

        # 4xx bodies
        ok = '"model": "stories260K", "prompt": "Once"'
        cases = [
            ("/v1/completions", "{not json", 400, None),
            ("/v1/completions", "[1, 2]", 400, None),
            ("/v1/completions", '{"model": "stories260K", "prompt": 5}', 400, "prompt"),
            ("/v1/completions", '{' + ok + ', "max_tokens": "ten"}', 400, "max_tokens"),
            ("/v1/completions", '{' + ok + ', "max_tokens": 0}', 400, "max_tokens"),
            ("/v1/completions", '{' + ok + ', "max_tokens": 100000}', 400, "max_tokens"),
            ("/v1/completions", '{' + ok + ', "temperature": "hot"}', 400, "temperature"),
            ("/v1/completions", '{' + ok + ', "stop": 7}', 400, "stop"),
            ("/v1/completions", '{"model": "gpt-4o", "prompt": "x"}', 404, "model"),
            ("/v1/chat/completions", '{"model": "stories260K", "messages": "hi"}', 400, "messages"),
            ("/v1/completions", json.dumps({"model": "stories260K", "prompt": "Once upon a time " * 200}), 400, "prompt"),
        ]
        for path, body, status, param in cases:
            st, b = raw(srv.url, path, body)
            check(st == status and isinstance(b.get("error", {}).get("message"), str) and
                  (param is None or b["error"]["param"] == param), f"{path} {body[:50]!r}: {st} {b}")
        st, b = raw(srv.url, "/v1/completions", json.dumps({"model": "stories260K", "prompt": "Once upon a time " * 200}))
        check(b["error"]["code"] == "context_length_exceeded", "prompt longer than the context: context_length_exceeded")
        for body, status in [("{oops", 400), ('{"model": "stories260K", "messages": [{"role": "user", "content": "x"}]}', 400),
                             ('{"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}', 404),
                             ('{"model": "stories260K", "max_tokens": -1, "messages": [{"role": "user", "content": "x"}]}', 400)]:
            st, b = raw(srv.url, "/v1/messages", body, {"Authorization": "", "x-api-key": KEY})
            check(st == status and b.get("type") == "error" and isinstance(b["error"]["message"], str),
                  f"/v1/messages {body[:40]!r}: {st} {b}")
        try:
            oa.completions.create(model="stories260K", prompt="x", max_tokens=0)
            check(False, "openai client: max_tokens 0 refused")
        except openai.BadRequestError as e:
            check(e.status_code == 400 and e.body["param"] == "max_tokens", f"openai client sees 400: {e.body}")
        try:
            an.messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}])
            check(False, "anthropic client: unknown model refused")
        except anthropic.NotFoundError as e:
            check(e.body["error"]["type"] == "not_found_error", f"anthropic client sees 404: {e.body}")

        # 8 concurrent requests equal their sequential results (greedy and seeded sampling)
        prompts = ["Once upon a time", "Lily", "The dog", "One day, Tom", "She was", "The sun", "A little bird", "Max"]

        def ask(i):
            kw = dict(temperature=0) if i % 2 == 0 else dict(temperature=0.9, seed=100 + i)
            return oa.completions.create(model="stories260K", prompt=prompts[i], max_tokens=24 + i, **kw).choices[0].text

        sequential = [ask(i) for i in range(8)]
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            parallel = list(ex.map(ask, range(8)))
        check(parallel == sequential, "8 concurrent requests equal their sequential results")
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            streams = list(ex.map(lambda i: "".join(c.choices[0].text for c in oa.completions.create(
                model="stories260K", prompt=prompts[i], max_tokens=24 + i, stream=True,
                **(dict(temperature=0) if i % 2 == 0 else dict(temperature=0.9, seed=100 + i)))), range(8)))
        check(streams == sequential, "8 concurrent streams equal the sequential results")

        # SIGTERM while streams run: the server exits cleanly and every stream ends (complete, or
        # with an error event), none hangs.
        ended = []

        def long_stream(i):
            try:
                for _ in oa.completions.create(model="stories260K", prompt=prompts[i], max_tokens=500, temperature=0.9,
                                               seed=i, stream=True):
                    pass
                ended.append("complete")
            except openai.APIError as e:
                ended.append(f"error: {type(e).__name__}")
            except Exception as e:  # noqa: BLE001 - a closed connection is a valid end too
                ended.append(f"closed: {type(e).__name__}")

        runners = [threading.Thread(target=long_stream, args=(i,)) for i in range(6)]
        for t in runners:
            t.start()
        rc = srv.stop()
        for t in runners:
            t.join(60)
        check(rc == 0 and len(ended) == 6 and not any(t.is_alive() for t in runners),
              f"SIGTERM with running streams: exit {rc}, streams ended {ended}")
    finally:
        if srv.proc.poll() is None:
            check(srv.stop() == 0, "SIGTERM: clean exit")


def health(url):
    req = urllib.request.Request(url + "/health", headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def check_disconnect(srv):
    """A streaming client that goes away mid-generation cancels it: the slot frees at once (long
    before the 400 requested tokens could be generated) and /health counts one cancellation."""
    before = health(srv.url)["cancelled"]
    host, port = srv.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    body = json.dumps({"model": "smollm2", "max_tokens": 400, "temperature": 0, "stream": True,
                       "messages": [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]})
    conn.request("POST", "/v1/chat/completions", body=body,
                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    resp = conn.getresponse()
    first = b""
    while b"data:" not in first:
        first += resp.fp.readline()
    running = health(srv.url)["running"]
    resp.close()
    conn.close()
    start = time.monotonic()
    h = health(srv.url)
    while (h["running"] or h["cancelled"] == before) and time.monotonic() - start < 10:
        time.sleep(0.05)
        h = health(srv.url)
    check(running == 1 and h["running"] == 0 and h["cancelled"] == before + 1,
          f"client disconnect cancels the generation: running {running} -> {h['running']}, "
          f"cancelled {before} -> {h['cancelled']} after {time.monotonic() - start:.2f} s")


def check_smollm(args):
    if not os.path.exists(args.smollm):
        print(f"skip SmolLM2 chat: {args.smollm} is absent (scripts/fetch_models.sh)")
        return
    system, question = "You are a concise assistant.", "What is the capital of France?"
    # Exact (f32) activations: the greedy answer of this 135M model flips on a near-tie under the
    # int8 rule ("La femme ..." instead of "The capital of France is Paris."); the plumbing is checked here.
    out, n_prompt, n_decode, _ = generate(args.generate, "--model", args.smollm, "--chat", "--system", system,
                                          "--prompt", question, "--max-tokens", "20", "--activations", "exact")
    want = out[:-1]
    srv = Server(args.server, "--model", args.smollm, "--model-name", "smollm2", "--max-concurrent", "2", "--threads", "2",
                 "--activations", "exact")
    try:
        check(any("chat template: smollm2" in line for line in srv.log), "SmolLM2's template is detected")
        oa = openai.OpenAI(base_url=srv.url + "/v1", api_key=KEY, max_retries=0)
        r = oa.chat.completions.create(model="smollm2", max_tokens=20, temperature=0, messages=[
            {"role": "system", "content": system}, {"role": "user", "content": question}])
        check(r.choices[0].message.content == want, f"SmolLM2 chat equals optiq-generate --chat: {r.choices[0].message.content!r} vs {want!r}")
        check(r.usage.prompt_tokens == n_prompt and r.usage.completion_tokens == n_decode, f"SmolLM2 usage {r.usage} vs {n_prompt}/{n_decode}")
        check("Paris" in r.choices[0].message.content, "SmolLM2 answers Paris")
        an = anthropic.Anthropic(base_url=srv.url, api_key=KEY, max_retries=0)
        with an.messages.stream(model="smollm2", max_tokens=20, extra_body={"temperature": 0}, system=system,
                                messages=[{"role": "user", "content": question}]) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        check(text == want and final.usage.input_tokens == n_prompt, f"SmolLM2 through the anthropic client: {text!r}")
        check_disconnect(srv)
    finally:
        rc = srv.stop()
    check(rc == 0, f"SmolLM2 server: clean exit (rc {rc})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--generate", required=True)
    ap.add_argument("--models", required=True, help="directory holding stories260K/")
    ap.add_argument("--smollm", default="", help="SmolLM2-135M-Instruct.Q4_1.gguf")
    args = ap.parse_args()
    check_stories(args)
    check_smollm(args)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
