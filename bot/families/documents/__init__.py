"""The documents family: spreadsheets, Word documents, slide decks, CSV and Markdown.

The model edits them through structured tools (cells, paragraphs, slides), never as raw
bytes; every file is parsed on the host as hostile input (`safety`). The edited bytes ride
in the filesystem family's patch, so the one path that applies them is its commit; this
family adds the evidence a reviewer needs: semantic diffs and before/after pictures.
"""
