"""A plain aiortc peer for the interop test (interop_aiortc.rs).

Reads one JSON command per line on stdin and answers each with one
`{"reply": ...}` line on stdout; what happens meanwhile comes as
`{"event": ...}` lines. Every message on every channel is echoed as the
kind it came as (text as text, bytes as bytes), except text that starts
with "echo ". Ends when stdin closes.
"""

import asyncio
import json
import logging
import os
import sys

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.sdp import candidate_from_sdp


def emit(**line):
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


class Peer:
    def __init__(self):
        self.pc = None

    def hook(self, dc):
        @dc.on("open")
        def on_open():
            emit(event={"kind": "open", "label": dc.label})

        @dc.on("close")
        def on_close():
            emit(event={"kind": "close", "label": dc.label})

        @dc.on("message")
        def on_message(data):
            text = isinstance(data, str)
            emit(event={"kind": "message", "label": dc.label, "text": text, "len": len(data),
                        "data": data if text else None})
            if not (text and data.startswith("echo ")):
                dc.send(data)

        if dc.readyState == "open":
            on_open()
        return dc

    async def run(self, cmd):
        op = cmd["cmd"]
        if op == "setup":
            servers = [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
                       for s in cmd.get("ice", [])]
            config = RTCConfiguration(iceServers=servers, iceTransportPolicy=RTCIceTransportPolicy(cmd.get("policy", "all")))
            self.pc = RTCPeerConnection(config)
            self.pc.on("datachannel", self.hook)

            @self.pc.on("connectionstatechange")
            def on_state():
                emit(event={"kind": "state", "state": self.pc.connectionState})
            return None
        if op == "offer":
            self.hook(self.pc.createDataChannel("stack"))
            await self.pc.setLocalDescription(await self.pc.createOffer())
            return self.pc.localDescription.sdp
        if op == "answer":
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=cmd["sdp"], type="offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            return self.pc.localDescription.sdp
        if op == "accept":
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=cmd["sdp"], type="answer"))
            return None
        if op == "candidate":
            line = cmd["candidate"]
            candidate = candidate_from_sdp(line.split(":", 1)[1] if line.startswith("candidate:") else line)
            candidate.sdpMLineIndex = 0
            await self.pc.addIceCandidate(candidate)
            return None
        if op == "open":
            dc = self.hook(self.pc.createDataChannel(cmd["label"]))

            @dc.on("open")
            def say_hello():
                dc.send(cmd["send"])
            return None
        if op == "close":
            await self.pc.close()
            return None
        raise ValueError(f"unknown command {op}")


async def main():
    if os.environ.get("AIORTC_LOG"):
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    peer = Peer()
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        try:
            emit(reply={"ok": await peer.run(json.loads(line))})
        except Exception as e:  # the test shows what went wrong
            emit(reply={"error": f"{type(e).__name__}: {e}"})
    if peer.pc is not None:
        await peer.pc.close()


asyncio.run(main())
