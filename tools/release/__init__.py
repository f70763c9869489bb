"""What ships: weights and their metadata, the trust fit, the training chain, the viewer bundle, the example DICOM."""
