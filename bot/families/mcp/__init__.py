"""The MCP family: tools of policy's MCP servers, each call through the broker."""
