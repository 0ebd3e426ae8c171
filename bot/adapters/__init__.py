"""Platform adapters: WeCom and DingTalk wire protocols."""
