"""pcc.toolkit"""
