"""Domain generalization: leave-one-domain-out studies (DomainBed's protocol) with zero-shot, ERM and InDiGo."""
