"""agentplane: a Git-native control plane for AI agent jobs."""
