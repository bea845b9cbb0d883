"""FastMCP's proxy in front of a stdio MCP server, served over Streamable HTTP.

The reference point for http-bench: `fastmcp_http_proxy.py PORT BACKEND [ARGS...]`
serves http://127.0.0.1:PORT/mcp. Set up as in fastmcp_proxy.py (`create_proxy` over
a `StdioTransport`), with FastMCP's default HTTP settings (stateful sessions, SSE
answers), so it is the same mode interpose is measured in.
"""

import sys

from fastmcp.client.transports import StdioTransport
from fastmcp.server import create_proxy


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit("usage: fastmcp_http_proxy.py PORT BACKEND [ARGS...]")
    port, command, *args = sys.argv[1:]
    proxy = create_proxy(StdioTransport(command=command, args=args), name="fastmcp-proxy")
    proxy.run(
        transport="http",
        host="127.0.0.1",
        port=int(port),
        path="/mcp",
        show_banner=False,
        # No per-request access log: interpose logs none either.
        log_level="warning",
        uvicorn_config={
            "access_log": False,
            # uvicorn closes connections idle for 5 s; sessions idle that long between
            # rounds would then race the close and get resets. interpose has no such limit.
            "timeout_keep_alive": 600,
        },
    )


if __name__ == "__main__":
    main()
