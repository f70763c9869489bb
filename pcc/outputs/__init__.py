"""pcc.outputs"""
