"""`sarvlm demo`: the whole FUSAR-GPT pipeline on the built-in synthetic SAR world."""
