"""Realistic asset purchase requests, shaped like the Connect API returns them."""
import copy
from typing import Any, Dict

_TEMPLATE: Dict[str, Any] = {
    'id': 'PR-1234-5678-9012-001',
    'type': 'purchase',
    'status': 'pending',
    'created': '2026-11-20T10:15:02+00:00',
    'updated': '2026-11-20T10:15:03+00:00',
    'note': '',
    'reason': '',
    'asset': {
        'id': 'AS-1234-5678-9012',
        'status': 'processing',
        'external_id': '100045',
        'external_uid': '9fb50525-a4a4-41a7-ad8c-1ae3f1a5b3a2',
        'product': {
            'id': 'PRD-276-377-545',
            'name': 'Cloud Backup Suite',
            'status': 'published',
        },
        'connection': {
            'id': 'CT-0000-0000-0001',
            'type': 'production',
            'provider': {'id': 'PA-425-033', 'name': 'Provider One'},
            'vendor': {'id': 'VA-000-001', 'name': 'Vendor One'},
            'hub': {'id': 'HB-0000-0001', 'name': 'Hub One'},
        },
        'items': [
            {
                'id': 'PRD-276-377-545-0001',
                'global_id': 'PRD-276-377-545-0001',
                'mpn': 'BACKUP-100GB',
                'quantity': '10',
                'old_quantity': '0',
                'type': 'Reservation',
                'period': 'Monthly',
                'item_type': 'Reservation',
                'display_name': 'Backup 100 GB',
            },
        ],
        'params': [
            {
                'id': 'tenant_domain',
                'name': 'tenant_domain',
                'type': 'text',
                'value': 'example.onmicrosoft.com',
                'value_error': '',
                'title': 'Tenant domain',
                'phase': 'ordering',
                'constraints': {'required': True, 'hidden': False},
            },
            {
                'id': 'activation_code',
                'name': 'activation_code',
                'type': 'text',
                'value': '',
                'value_error': '',
                'title': 'Activation code',
                'phase': 'fulfillment',
                'constraints': {'required': False, 'hidden': False},
            },
        ],
        'tiers': {
            'customer': {
                'id': 'TA-0-7251-3930-7482',
                'name': 'Big Customer Inc.',
                'external_id': '10045',
                'contact_info': {
                    'address_line1': '1 Main Street',
                    'city': 'Barcelona',
                    'country': 'es',
                    'postal_code': '08001',
                    'contact': {
                        'first_name': 'Ana',
                        'last_name': 'Garcia',
                        'email': 'ana.garcia@example.com',
                    },
                },
            },
            'tier1': {'id': 'TA-0-4101-3384-8611', 'name': 'Reseller One', 'external_id': '10001'},
            'tier2': {},
        },
        'configuration': {'params': []},
        'marketplace': {'id': 'MP-91673', 'name': 'EU Marketplace'},
        'contract': {'id': 'CRD-00000-00000-00000', 'name': 'Distribution contract'},
    },
    'marketplace': {'id': 'MP-91673', 'name': 'EU Marketplace', 'icon': '/media/mp.png'},
    'contract': {'id': 'CRD-00000-00000-00000', 'name': 'Distribution contract'},
    'events': {
        'created': {'at': '2026-11-20T10:15:02+00:00'},
        'updated': {'at': '2026-11-20T10:15:03+00:00'},
    },
}


def purchase_request(
    request_id: str = 'PR-1234-5678-9012-001',
    status: str = 'pending',
    updated: str = '2026-11-20T10:15:03+00:00',
    **overrides: Any,
) -> Dict[str, Any]:
    """A new purchase request document; top-level fields can be overridden."""
    request = copy.deepcopy(_TEMPLATE)
    request.update(id=request_id, status=status, updated=updated, **overrides)
    request['events']['updated']['at'] = updated
    return request
