"""`bcd ingest`: DICOM files, the NYU reference layout or PNG folders into the exam format."""
