#!/usr/bin/env python3
"""Regenerates api/serve/openapi.json, the document `forkvm serve` serves at
/openapi.json, from the Freestyle VMs OpenAPI YAML. Run by hand when the
spec or the set of engine-backed routes changes (needs PyYAML):

    python3 api/serve/openapi_gen.py SPEC.yml > api/serve/openapi.json

What it changes, so the served document describes this server honestly:
- info/servers name forkvm and its default listen address;
- every error schema gains `code` (the SDK keys errors on it);
- operations that need a running VM are marked `x-forkvm-requires-engine`
  and list 501 NOT_IMPLEMENTED (returned while no VM engine is built in);
- /healthz and /openapi.json are added; bearerAuth is required elsewhere.
"""
import json
import sys

import yaml

STORE_ONLY = {"list_vms", "get_vm", "get_build", "list_build_phases", "list_snapshots", "get_snapshot",
              "delete_snapshot", "update_snapshot", "get_build_for_vm"}

ERROR = {"type": "object", "required": ["error", "code", "message"], "properties": {
    "error": {"type": "string", "description": "Error code in SCREAMING_SNAKE_CASE"},
    "code": {"type": "string", "description": "Same as error; the SDK reads this one"},
    "message": {"type": "string", "description": "Human-readable error message"},
    "description": {"type": "string", "description": "Same as message"}}}


def main():
    doc = yaml.safe_load(open(sys.argv[1]))
    doc["info"]["title"] = "forkvm: Freestyle VMs API"
    doc["info"]["description"] = (
        "The Freestyle VMs API as served by `forkvm serve`. Operations marked x-forkvm-requires-engine "
        "answer 501 NOT_IMPLEMENTED when the server runs without a VM engine. Errors carry both "
        "`error` and `code`.")
    doc["servers"] = [{"url": "http://127.0.0.1:8080", "description": "forkvm serve (default --listen)"}]
    doc["security"] = [{"bearerAuth": []}]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, resp in op.get("responses", {}).items():
                schema = resp.get("content", {}).get("application/json", {}).get("schema", {})
                if status[0] in "45" and "error" in schema.get("properties", {}):
                    resp["content"]["application/json"]["schema"] = ERROR
            op.setdefault("responses", {})["401"] = {"description": "Error: Unauthorized",
                                                     "content": {"application/json": {"schema": ERROR}}}
            if op["operationId"] not in STORE_ONLY:
                op["x-forkvm-requires-engine"] = True
                op["responses"]["501"] = {"description": "Error: NotImplemented (no VM engine in this build)",
                                          "content": {"application/json": {"schema": ERROR}}}
    doc["paths"]["/healthz"] = {"get": {"operationId": "healthz", "security": [], "description": "Liveness",
                                        "responses": {"200": {"description": "{\"status\":\"ok\"}"}}}}
    doc["paths"]["/openapi.json"] = {"get": {"operationId": "openapi", "security": [],
                                             "description": "This document",
                                             "responses": {"200": {"description": "OpenAPI 3.1 JSON"}}}}
    json.dump(doc, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


main()
