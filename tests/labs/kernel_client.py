"""Runs one cell in a new kernel of a Jupyter server, through its REST API and WebSocket kernel
protocol, as a browser does. Run with the lab environment's python (it has websocket-client):

    python kernel_client.py <address> <base_url> <token>  < code

Prints one JSON object: {"stdout": ..., "stderr": ..., "error": ... or null}.
"""

import json
import sys
import urllib.request
import uuid

import websocket

address, base_url, token = sys.argv[1:4]
code = sys.stdin.read()
headers = {"Authorization": f"token {token}"}
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def rest(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://{address}{base_url}{path}", data=data, method=method, headers=headers)
    with opener.open(request, timeout=60) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


kernel = rest("POST", "api/kernels", {"name": "python3"})
ws = websocket.create_connection(
    f"ws://{address}{base_url}api/kernels/{kernel['id']}/channels",
    header=[f"Authorization: token {token}"],
    timeout=300,
)
msg_id = uuid.uuid4().hex
ws.send(
    json.dumps(
        {
            "header": {
                "msg_id": msg_id,
                "msg_type": "execute_request",
                "username": "test",
                "session": uuid.uuid4().hex,
                "version": "5.3",
            },
            "parent_header": {},
            "metadata": {},
            "content": {
                "code": code,
                "silent": False,
                "store_history": False,
                "user_expressions": {},
                "allow_stdin": False,
            },
            "channel": "shell",
        }
    )
)
out = {"stdout": "", "stderr": "", "error": None}
while True:
    message = json.loads(ws.recv())
    if message.get("parent_header", {}).get("msg_id") != msg_id:
        continue
    kind = message["msg_type"]
    if kind == "stream":
        out[message["content"]["name"]] += message["content"]["text"]
    elif kind == "error":
        out["error"] = f"{message['content']['ename']}: {message['content']['evalue']}"
    elif kind == "status" and message["content"]["execution_state"] == "idle":
        break
ws.close()
rest("DELETE", f"api/kernels/{kernel['id']}")
print(json.dumps(out))
