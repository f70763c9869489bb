"""pcc.geometry"""
