"""
Locust user for bench/gateway-locust: an OpenAI client of the Muster gateway.
Each user asks chat completions of the vLLM-like fixture by model name, one
in five streamed (SSE, read to [DONE]), with no pause between requests.
Host, model and the API key (optional) come from the environment:
LOCUST_HOST is given by run.ts as --host; MODEL (default fake-model).
"""
import os

from locust import FastHttpUser, constant, task

MODEL = os.environ.get("MODEL", "fake-model")
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hello from locust"}], "max_tokens": 8}


class OpenAiUser(FastHttpUser):
    wait_time = constant(0)

    @task(4)
    def chat(self):
        with self.client.post("/v1/chat/completions", json=BODY, name="chat", catch_response=True) as r:
            if r.status_code != 200 or "choices" not in (r.text or ""):
                r.failure(f"HTTP {r.status_code}: {(r.text or '')[:200]}")

    @task(1)
    def chat_stream(self):
        with self.client.post("/v1/chat/completions", json={**BODY, "stream": True}, name="chat (stream)", catch_response=True) as r:
            if r.status_code != 200 or not (r.text or "").rstrip().endswith("data: [DONE]"):
                r.failure(f"HTTP {r.status_code}: stream did not end with [DONE]")
