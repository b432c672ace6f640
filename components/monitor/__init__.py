"""Close the loop from serving back to training: logged traffic vs the served model's training data."""
